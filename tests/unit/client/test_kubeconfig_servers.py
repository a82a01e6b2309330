from pathlib import Path

from corral.client import kubeconfig
from corral.client.rest import Client


def test_a_comma_list_in_server_is_every_endpoint() -> None:
    config = kubeconfig.ClientConfig(server="https://a:6443, https://b:6443/,https://a:6443")
    assert config.endpoints == ("https://a:6443", "https://b:6443")


def test_the_servers_extension_adds_fallbacks_kubectl_ignores(tmp_path: Path) -> None:
    path = tmp_path / "config"
    document = kubeconfig.build(
        "ha", "https://lb:6443", token="t", servers=("https://m1:6443", "https://m2:6443")
    )
    kubeconfig.write(path, document)
    config = kubeconfig.load(str(path))
    # kubectl reads "server" alone: the load balancer stays first.
    assert config.server == "https://lb:6443"
    assert config.endpoints == ("https://lb:6443", "https://m1:6443", "https://m2:6443")
    # A --server flag names its own servers; the file's list is for the file's server.
    flagged = kubeconfig.load(str(path), server="https://x:1,https://y:2")
    assert flagged.endpoints == ("https://x:1", "https://y:2")


def test_client_moves_on_only_from_the_server_that_failed() -> None:
    client = Client(kubeconfig.ClientConfig(server="http://a:1,http://b:2,http://c:3"))
    assert client.base == "http://a:1"
    client.fail_over("http://a:1")
    # A second caller that saw the same failure does not skip b.
    client.fail_over("http://a:1")
    assert client.base == "http://b:2"
    client.fail_over("http://b:2")
    client.fail_over("http://c:3")
    assert client.base == "http://a:1"
