"""The gluster.org stack's images: built by examples/gluster/build.py, smoke-tested in Docker.

Not through corral: each test makes a "pod" as corral does (an infra container
with networking off, app containers joined to its namespaces, with corral's
default no-new-privileges and NET_RAW dropped) and talks to it over loopback
from a client container in the same namespace. The containers take their
commands, environment and configuration from examples/gluster.json where
the manifest gives them; only ports move, since one namespace stands for the
several pods and Services of the real stack.

The first test builds the images (or finds them, or loads a saved set from
the build's cache): on a clean machine that is a few minutes.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest

from corral.objects import Obj
from corralctl.dockerd import Dockerd

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "examples" / "gluster" / "build.py"
MANIFEST = ROOT / "examples" / "gluster.json"
APPS = ("httpd", "sitebuilder", "mediawiki", "mariadb", "varnish", "awstats")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

T = TypeVar("T")

# The first test to need the images may build them: minutes, on a clean machine.
BUILD_TIMEOUT = 1800


# --- the manifest -------------------------------------------------------------------------


def manifest() -> list[Obj]:
    items: list[Obj] = json.loads(MANIFEST.read_text())["items"]
    return items


def configmap(name: str) -> dict[str, str]:
    for item in manifest():
        if item["kind"] == "ConfigMap" and item["metadata"]["name"] == name:
            data: dict[str, str] = item["data"]
            return data
    raise KeyError(name)


def secret() -> dict[str, str]:
    for item in manifest():
        if item["kind"] == "Secret":
            data: dict[str, str] = item["stringData"]
            return data
    raise KeyError("Secret")


# What owns pods in the manifest: mediawiki is a Deployment, mariadb a
# StatefulSet, the rest RCs.
WORKLOAD_KINDS = ("ReplicationController", "Deployment", "StatefulSet")


def container_spec(controller: str, name: str) -> Obj:
    """Container ``name`` of the pod template of the workload ``controller``."""
    for item in manifest():
        if item["kind"] in WORKLOAD_KINDS and item["metadata"]["name"] == controller:
            spec = item["spec"]["template"]["spec"]
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                if container["name"] == name:
                    found: Obj = container
                    return found
    raise KeyError(f"{controller}/{name}")


def env_of(controller: str, name: str, pod_name: str = "") -> dict[str, str]:
    """A container's environment as the node agent resolves it from the manifest."""
    keys = secret()
    out: dict[str, str] = {}
    for var in container_spec(controller, name).get("env", []):
        source = var.get("valueFrom") or {}
        if "value" in var:
            out[var["name"]] = var["value"]
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name", var
            out[var["name"]] = pod_name
        else:
            out[var["name"]] = keys[source["secretKeyRef"]["key"]]
    return out


def memory_limit(controller: str, name: str) -> str:
    limit: str = container_spec(controller, name)["resources"]["limits"]["memory"]
    return limit.replace("Mi", "m").replace("Gi", "g")


# --- pods in plain Docker -----------------------------------------------------------------


# The client: python3 in the sitebuilder image, one HTTP request per exec.
CLIENT = r"""
import json, sys, urllib.error, urllib.parse, urllib.request
url, method, form, headers = json.loads(sys.argv[1])
data = urllib.parse.urlencode(form).encode() if form is not None else None
request = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        status, head, body = response.status, dict(response.headers), response.read()
except urllib.error.HTTPError as error:
    status, head, body = error.code, dict(error.headers), error.read()
except OSError as error:
    status, head, body = 0, {}, str(error).encode()
print(json.dumps([status, head, body.decode("utf-8", "replace")]))
"""


class Pod:
    """An infra container with networking off, and containers that join it."""

    def __init__(self, client: docker.DockerClient, infra_image: str, name: str) -> None:
        self.client = client
        self.name = name
        self.containers: list[Any] = []
        self.infra = self._keep(
            client.containers.run(
                infra_image,
                ["/bin/sleep", "2147483647"],
                name=f"{name}-POD",
                network_mode="none",
                ipc_mode="shareable",
                cap_drop=["ALL"],
                detach=True,
            )
        )
        self._client_container: Any = None

    def _keep(self, container: Any) -> Any:
        self.containers.append(container)
        return container

    def run(
        self,
        name: str,
        image: str,
        command: list[str] | None = None,
        *,
        entrypoint: list[str] | None = None,
        env: dict[str, str] | None = None,
        volumes: dict[str, dict[str, str]] | None = None,
        mem_limit: str | None = None,
    ) -> Any:
        return self._keep(
            self.client.containers.run(
                image,
                command,
                entrypoint=entrypoint,
                name=f"{self.name}-{name}",
                environment=env or {},
                volumes=volumes or {},
                network_mode=f"container:{self.infra.id}",
                ipc_mode=f"container:{self.infra.id}",
                # corral's defaults for every container.
                security_opt=["no-new-privileges:true"],
                cap_drop=["NET_RAW"],
                mem_limit=mem_limit,
                detach=True,
            )
        )

    def http(
        self,
        port: int,
        path: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        if self._client_container is None:
            self._client_container = self.run(
                "client", "corral.local/gluster/sitebuilder:1.0", ["sleep", "infinity"]
            )
        request = [
            f"http://127.0.0.1:{port}{path}",
            "POST" if form is not None else "GET",
            form,
            {"User-Agent": BROWSER, **(headers or {})},
        ]
        code, output = self._client_container.exec_run(
            ["python3", "-c", CLIENT, json.dumps(request)], demux=False
        )
        assert code == 0, output.decode(errors="replace")
        status, head, body = json.loads(output)
        return int(status), {k.lower(): v for k, v in head.items()}, str(body)

    def logs(self, container: Any) -> str:
        return str(container.logs().decode(errors="replace"))

    def remove(self) -> None:
        for container in reversed(self.containers):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True, v=True)


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {last!r}")
        time.sleep(interval)
        last = check()
    return last


Response = tuple[int, dict[str, str], str]


def fetch_until(
    pod: Pod,
    port: int,
    path: str,
    timeout: float,
    what: str,
    accept: Callable[[Response], bool] = lambda r: r[0] == 200,
) -> Response:
    """GET ``path`` until ``accept`` likes the answer; return that answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = pod.http(port, path)
        if accept(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}: "
                f"{path} answered {answer[0]}: {answer[2][:500]}"
            )
        time.sleep(1.0)


def exited(container: Any, timeout: float = 120) -> int:
    result = container.wait(timeout=timeout)
    return int(result["StatusCode"])


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gluster_images(dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The six images, built (or reused) by the build script into the test's dockerd."""
    log = tmp_path_factory.mktemp("gluster-build") / "build.log"
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            [sys.executable, str(BUILD), "--docker-host", dockerd.host],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1500,
            check=False,
        )
    text = log.read_text(errors="replace")
    assert result.returncode == 0, f"build.py failed:\n{text[-6000:]}"
    print(f"gluster images ready in {time.monotonic() - started:.0f}s")
    client = dockerd.client()
    images = {name: f"corral.local/gluster/{name}:1.0" for name in APPS}
    for image in images.values():
        client.images.get(image)
    return images


@pytest.fixture
def pod(
    dockerd: Dockerd,
    test_image: str,
    gluster_images: dict[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[Pod]:
    name = "gluster-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40]
    made = Pod(dockerd.client(), test_image, name)
    try:
        yield made
    finally:
        made.remove()


def build_site(pod: Pod, images: dict[str, str], site: Path) -> None:
    """The website pod's init container: the sitebuilder, into a shared directory."""
    builder = pod.run(
        "sitebuilder",
        images["sitebuilder"],
        env=env_of("website", "sitebuilder"),
        volumes={str(site): {"bind": "/srv/site", "mode": "rw"}},
        mem_limit=memory_limit("website", "sitebuilder"),
    )
    status = exited(builder)
    assert status == 0, pod.logs(builder)
    assert "pages" in pod.logs(builder)


def start_mariadb(pod: Pod, images: dict[str, str], pod_name: str, data: Path, port: int) -> Any:
    """A copy of the mariadb StatefulSet (``mariadb-0``, ``mariadb-1``), as the manifest runs it."""
    config = data.parent / f"{pod_name}-conf.d"
    config.mkdir(exist_ok=True)
    (config / "gluster.cnf").write_text(configmap("mariadb-config")["server.cnf"])
    return pod.run(
        pod_name,
        images["mariadb"],
        [f"--port={port}"],
        # Its hooks reach the other copy on another port of the shared namespace.
        env={**env_of("mariadb", "mariadb", pod_name), "MARIADB_PORT": str(port)},
        volumes={
            str(data): {"bind": "/var/lib/mysql", "mode": "rw"},
            str(config): {"bind": "/etc/mysql/conf.d", "mode": "ro"},
        },
        mem_limit=memory_limit("mariadb", "mariadb"),
    )


def hook(container: Any, *args: str) -> tuple[int, str]:
    """Run the replicated set's hook the way the node agent does: docker exec."""
    code, output = container.exec_run(["mariadb-replication", *args])
    return int(code), str(output.decode(errors="replace"))


def status_of(container: Any) -> Obj:
    code, output = hook(container, "status")
    assert code == 0, output
    answer: Obj = json.loads(output.strip().splitlines()[-1])
    return answer


def sql(container: Any, statement: str, *, port: int, names: bool = False) -> str:
    password = secret()["root-password"]
    command = ["mariadb", "-uroot", f"-p{password}", "-h127.0.0.1", f"-P{port}", "-e", statement]
    code, output = container.exec_run(command if names else [*command, "-N"])
    text = str(output.decode(errors="replace"))
    return text if code == 0 else f"ERROR {code}: {text}"


# --- tests ---------------------------------------------------------------------------------


def test_awstats_image_carries_the_manifests_files() -> None:
    """The image's defaults are the ConfigMap's files, so either runs the same sidecar."""
    directory = ROOT / "examples" / "gluster" / "images" / "awstats"
    for key, value in configmap("awstats-config").items():
        assert (directory / key).read_text() == value, f"{key} differs from the ConfigMap's"


def test_build_tags_are_content_hashes() -> None:
    """--print-tags needs no Docker, and says the same twice."""

    def tags() -> list[str]:
        return subprocess.run(
            [sys.executable, str(BUILD), "--print-tags"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()

    first = tags()
    assert first == tags()
    names = [tag.rsplit(":", 1)[0].rsplit("/", 1)[1] for tag in first]
    assert set(APPS) <= set(names) and "base" in names
    assert all(re.fullmatch(r"[0-9a-f]{12}", tag.rsplit(":", 1)[1]) for tag in first)


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT)
def test_httpd_serves_the_built_site(
    pod: Pod, gluster_images: dict[str, str], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    build_site(pod, gluster_images, site)
    assert {"index.html", "404.html", "sitemap.xml", "css"} <= {p.name for p in site.iterdir()}
    for page in ("documentation", "download", "community"):
        assert (site / page / "index.html").exists()

    httpd = pod.run(
        "httpd",
        gluster_images["httpd"],
        volumes={str(site): {"bind": "/usr/local/apache2/htdocs", "mode": "ro"}},
        mem_limit=memory_limit("website", "httpd"),
    )
    status, headers, body = fetch_until(pod, 80, "/", 30, "httpd on :80")
    assert "Gluster" in body and "/documentation/" in body
    assert headers["content-type"].startswith("text/html")
    status, _, body = pod.http(80, "/documentation/")
    assert status == 200 and "Quick start" in body
    status, _, _ = pod.http(80, "/css/site.css")
    assert status == 200
    status, _, body = pod.http(80, "/no-such-page")
    assert status == 404 and "nothing at this address" in body
    # The access log is the container's stdout.
    wait_for(lambda: '"GET /documentation/ HTTP/1.1" 200' in pod.logs(httpd), 10, "access log")


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT)
def test_mariadb_hooks_promote_follow_switch_over_and_rebuild_a_diverged_copy(
    pod: Pod, gluster_images: dict[str, str], tmp_path: Path
) -> None:
    """The replicated set's hooks on two real copies, each step checked in SQL."""
    keys = secret()
    first_data, second_data = tmp_path / "first", tmp_path / "second"
    first_data.mkdir()
    second_data.mkdir()
    first = start_mariadb(pod, gluster_images, "mariadb-0", first_data, 3306)
    second = start_mariadb(pod, gluster_images, "mariadb-1", second_data, 3307)
    for copy_, port in ((first, 3306), (second, 3307)):
        wait_for(lambda c=copy_, p=port: sql(c, "SELECT 1", port=p).strip() == "1", 120, "a copy")
    # New copies: read-only, holding nothing, server ids from their ordinals.
    assert status_of(first) == {"role": "empty", "position": [0], "writable": False}
    assert status_of(second)["role"] == "empty"
    assert sql(second, "SELECT @@read_only, @@server_id", port=3307).split() == ["1", "2"]

    code, output = hook(first, "promote")
    assert code == 0, output
    assert status_of(first)["role"] == "primary" and status_of(first)["writable"] is True
    code, output = hook(second, "rebuild", "127.0.0.1:3306")
    assert code == 0, output
    assert status_of(second)["role"] == "replica"

    def write(container: Any, port: int, statement: str) -> tuple[int, str]:
        code, output = container.exec_run(
            [
                "mariadb", f"-u{keys['wiki-user']}", f"-p{keys['wiki-password']}",
                "-h127.0.0.1", f"-P{port}", keys["wiki-database"], "-e", statement,
            ]
        )  # fmt: skip
        return int(code), str(output.decode(errors="replace"))

    # The application's account and database came with the rebuild.
    assert write(first, 3306, "CREATE TABLE edits (id INT PRIMARY KEY, note TEXT)")[0] == 0
    for n in range(5):
        assert write(first, 3306, f"INSERT INTO edits VALUES ({n}, 'edit {n}')")[0] == 0
    # Semi-synchronous: acknowledged only once the replica had it.
    semisync = sql(first, "SHOW STATUS LIKE 'Rpl_semi_sync_master_status'", port=3306)
    assert semisync.split() == ["Rpl_semi_sync_master_status", "ON"]
    wait_for(lambda: status_of(second)["position"] == status_of(first)["position"], 30, "catch-up")
    count = f"SELECT COUNT(*) FROM {keys['wiki-database']}.edits"
    wait_for(lambda: sql(second, count, port=3307).strip() == "5", 30, "the replicated rows")

    # A switchover: demote, promote the replica, the old primary follows.
    assert hook(first, "demote")[0] == 0
    code, output = write(first, 3306, "INSERT INTO edits VALUES (99, 'refused')")
    assert code != 0 and "read-only" in output.lower(), output
    assert hook(second, "promote")[0] == 0
    code, output = hook(first, "follow", "127.0.0.1:3307")
    assert code == 0, output
    assert status_of(first)["role"] == "replica"
    assert write(second, 3307, "INSERT INTO edits VALUES (5, 'after the switchover')")[0] == 0
    wait_for(lambda: sql(first, count, port=3306).strip() == "6", 30, "replication the other way")

    # An old primary that took a write nobody else saw: follow refuses (3), rebuild mends it.
    sql(first, "STOP SLAVE; SET GLOBAL read_only = OFF", port=3306)
    assert write(first, 3306, "INSERT INTO edits VALUES (100, 'errant')")[0] == 0
    sql(first, "SET GLOBAL read_only = ON", port=3306)
    code, output = hook(first, "follow", "127.0.0.1:3307")
    assert code == 3, output
    code, output = hook(first, "rebuild", "127.0.0.1:3307")
    assert code == 0, output
    assert status_of(first)["role"] == "replica"
    assert sql(first, count, port=3306).strip() == "6"
    assert write(second, 3307, "INSERT INTO edits VALUES (6, 'after the rebuild')")[0] == 0
    wait_for(lambda: sql(first, count, port=3306).strip() == "7", 30, "the rebuilt copy following")
    # The manifest's liveness check.
    for container in (first, second):
        code, output = container.exec_run(["mariadb-admin", "--silent", "ping"])
        assert code == 0, output


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT)
def test_mediawiki_installs_and_edits_through_its_api(
    pod: Pod, gluster_images: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "mysql"
    data.mkdir()
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    database = start_mariadb(pod, gluster_images, "mariadb-0", data, 3306)
    wait_for(lambda: sql(database, "SELECT 1", port=3306).strip() == "1", 120, "mariadb")
    # corral would elect it; here the hook runs by hand.
    code, output = hook(database, "promote")
    assert code == 0, output
    env = env_of("mediawiki", "mediawiki")
    # Service DNS stands in for mariadb-primary's address; the pod shares 127.0.0.1.
    env["MEDIAWIKI_DB_HOST"] = "127.0.0.1"
    wiki = pod.run(
        "mediawiki",
        gluster_images["mediawiki"],
        env=env,
        volumes={str(images_dir): {"bind": "/var/lib/mediawiki/images", "mode": "rw"}},
        mem_limit=memory_limit("mediawiki", "mediawiki"),
    )
    # The liveness path answers before the database does; readiness waits for the schema.
    wait_for(
        lambda: pod.http(80, "/w/resources/assets/poweredby_mediawiki.svg")[0] == 200,
        60,
        "Apache in the mediawiki container",
    )
    wait_for(
        lambda: pod.http(80, "/w/index.php")[0] == 200,
        240,
        "/w/index.php (the schema install)",
        interval=2,
    )
    status, _, body = pod.http(80, "/wiki/Main_Page")
    assert status == 200 and "Gluster Community Wiki" in body

    # An edit through the API, as an anonymous user (the wiki allows it by default).
    status, _, body = pod.http(80, "/w/api.php?action=query&meta=tokens&format=json")
    assert status == 200, body
    token = json.loads(body)["query"]["tokens"]["csrftoken"]
    text = "Gluster is a '''scalable''' network filesystem. Written by the image test."
    status, _, body = pod.http(
        80,
        "/w/api.php",
        form={
            "action": "edit",
            "title": "Smoke_Test",
            "text": text,
            "summary": "smoke test",
            "token": token,
            "format": "json",
        },
    )
    assert status == 200 and json.loads(body)["edit"]["result"] == "Success", body
    status, _, body = pod.http(
        80,
        "/w/api.php?action=query&prop=revisions&rvprop=content&rvslots=main"
        "&titles=Smoke_Test&format=json&formatversion=2",
    )
    assert status == 200, body
    page = json.loads(body)["query"]["pages"][0]
    assert page["revisions"][0]["slots"]["main"]["content"] == text
    status, _, body = pod.http(80, "/wiki/Smoke_Test")
    assert status == 200 and "<b>scalable</b>" in body
    # Old-style links, and what must not be served.
    assert pod.http(80, "/index.php?title=Smoke_Test")[0] == 200
    assert pod.http(80, "/w/maintenance/update.php")[0] == 403
    settings = wiki.exec_run(["stat", "-c", "%U:%G %a", "/etc/mediawiki/LocalSettings.php"])
    assert settings.output.decode().strip() == "root:www-data 640"
    assert "schema installed" in pod.logs(wiki)


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT)
def test_varnish_caches_and_awstats_reports_its_log(
    pod: Pod, gluster_images: dict[str, str], tmp_path: Path
) -> None:
    """The varnish pod (varnish, varnishncsa, awstats) in front of the website's httpd."""
    site, vcl, vsm, logs, awstats_config, awstats_data = (
        tmp_path / name for name in ("site", "vcl", "vsm", "logs", "awstats-config", "awstats")
    )
    for directory in (site, vcl, vsm, logs, awstats_config, awstats_data):
        directory.mkdir()
    build_site(pod, gluster_images, site)
    pod.run(
        "httpd",
        gluster_images["httpd"],
        env={"APACHE_HTTP_PORT": "8082"},
        volumes={str(site): {"bind": "/usr/local/apache2/htdocs", "mode": "ro"}},
    )
    # The ConfigMap's VCL; the Services' names become this namespace's ports.
    text = configmap("varnish-vcl")["default.vcl"]
    text = text.replace(
        '.host = "website";\n    .port = "80";', '.host = "127.0.0.1";\n    .port = "8082";'
    )
    text = text.replace(
        '.host = "mediawiki";\n    .port = "80";', '.host = "127.0.0.1";\n    .port = "8083";'
    )
    assert text.count('"127.0.0.1"') == 3
    (vcl / "default.vcl").write_text(text)
    for key, value in configmap("awstats-config").items():
        (awstats_config / key).write_text(value)

    varnish = pod.run(
        "varnish",
        gluster_images["varnish"],
        env={**env_of("varnish", "varnish"), "VARNISH_HTTP_PORT": "8000"},
        volumes={
            str(vcl): {"bind": "/etc/varnish", "mode": "ro"},
            str(vsm): {"bind": "/var/lib/varnish", "mode": "rw"},
        },
        mem_limit=memory_limit("varnish", "varnish"),
    )
    ncsa = container_spec("varnish", "varnishncsa")
    varnishncsa = pod.run(
        "varnishncsa",
        gluster_images["varnish"],
        entrypoint=ncsa["command"],
        volumes={
            str(vsm): {"bind": "/var/lib/varnish", "mode": "ro"},
            str(logs): {"bind": "/var/log/varnish", "mode": "rw"},
        },
        mem_limit=memory_limit("varnish", "varnishncsa"),
    )
    awstats_spec = container_spec("varnish", "awstats")
    awstats = pod.run(
        "awstats",
        gluster_images["awstats"],
        entrypoint=awstats_spec["command"],
        env={**env_of("varnish", "awstats"), "UPDATE_INTERVAL_SECONDS": "2"},
        volumes={
            str(awstats_config): {"bind": "/etc/awstats", "mode": "ro"},
            str(logs): {"bind": "/var/log/varnish", "mode": "rw"},
            str(awstats_data): {"bind": "/var/lib/awstats", "mode": "rw"},
        },
        mem_limit=memory_limit("varnish", "awstats"),
    )

    wait_for(lambda: pod.http(8000, "/varnish-health")[0] == 200, 60, "varnishd")
    # The website backend's probe must see it healthy before Varnish sends it traffic.
    first = fetch_until(pod, 8000, "/", 60, "the site through Varnish")
    assert first[1].get("x-cache") == "MISS" and "Gluster" in first[2]
    status, headers, body = pod.http(8000, "/")
    assert (status, headers.get("x-cache")) == (200, "HIT"), headers
    assert body == first[2]
    for path in ("/documentation/", "/download/", "/community/"):
        assert pod.http(8000, path)[0] == 200
    # Sessions are never cached; the wiki's backend is down here, and says so.
    assert pod.http(8000, "/wiki/Main_Page")[0] == 503

    # varnishncsa writes the combined log that Awstats reads (and then empties).
    wait_for(
        lambda: (
            "/documentation/" in (logs / "access.log").read_text()
            or "/documentation/" in _awstats_pages(awstats_data)
        ),
        # Generous: varnishncsa flushes, and Awstats empties the log, on
        # their own schedules, which a loaded machine stretches.
        90,
        "varnishncsa's access log",
    )
    _, _, report = fetch_until(
        pod,
        8000,
        "/awstats/",
        60,
        "an Awstats report that counts /documentation/",
        accept=lambda r: r[0] == 200 and "/documentation/" in r[2],
    )
    assert "www.gluster.org" in report
    assert pod.http(8000, "/awstats/icon/other/awstats_logo6.png")[0] == 200
    for container in (varnish, varnishncsa, awstats):
        container.reload()
        assert container.status == "running", pod.logs(container)


def _awstats_pages(data: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in data.glob("awstats*.gluster.txt"))


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT)
def test_awstats_reports_a_sample_log(
    pod: Pod, gluster_images: dict[str, str], tmp_path: Path
) -> None:
    config, logs, data = tmp_path / "config", tmp_path / "logs", tmp_path / "data"
    for directory in (config, logs, data):
        directory.mkdir()
    for key, value in configmap("awstats-config").items():
        (config / key).write_text(value)
    now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    sample = [
        f'198.51.100.{n} - - [{now}] "GET {path} HTTP/1.1" 200 {size} "-" "{BROWSER}"'
        for n, (path, size) in enumerate(
            [("/", 3500), ("/download/", 2100), ("/download/", 2100), ("/wiki/Main_Page", 16000)],
            start=7,
        )
    ]
    (logs / "access.log").write_text("\n".join(sample) + "\n")
    awstats = pod.run(
        "awstats",
        gluster_images["awstats"],
        entrypoint=container_spec("varnish", "awstats")["command"],
        # Any log outgrows one byte: trimmed right after the first update.
        env={**env_of("varnish", "awstats"), "MAX_LOG_BYTES": "1"},
        volumes={
            str(config): {"bind": "/etc/awstats", "mode": "ro"},
            str(logs): {"bind": "/var/log/varnish", "mode": "rw"},
            str(data): {"bind": "/var/lib/awstats", "mode": "rw"},
        },
    )
    _, _, body = fetch_until(pod, 8080, "/awstats/", 60, "the report on :8080")
    assert "/download/" in body and "/wiki/Main_Page" in body
    # Read, then emptied because it outgrew MAX_LOG_BYTES (down to its
    # leading comment): the volume never fills.
    assert (logs / "access.log").read_text().startswith("#")
    assert "/download/" not in (logs / "access.log").read_text()
    assert "update failed" not in pod.logs(awstats)
