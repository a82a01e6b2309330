"""The web console in a real headless Chromium: sign in, watch, scale, apply, and RBAC.

Debian's chromium and chromedriver, driven by Selenium, against a cluster of
the test's own (API server, the replication controller, the example stack).
Chromium trusts the cluster's serving certificate by its key's pin, so TLS
stays on. Screenshots go to the test's directory (and, with
CORRAL_CONSOLE_SCREENSHOTS=DIR, to DIR, which is how docs/ got its own).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from corral.api.resources import REGISTRY
from corral.client.rest import Client
from corralctl.processes import ManagedProcess
from tests.conftest import LocalCluster
from tests.support import eventually

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gluster.json"
RBAC_GROUP = "rbac.authorization.k8s.io"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PODS, NODES = REGISTRY.resolve("pods"), REGISTRY.resolve("nodes")
SERVICEACCOUNTS = REGISTRY.resolve("serviceaccounts")
BINDINGS = REGISTRY.resolve("clusterrolebindings")
RCS = REGISTRY.resolve("replicationcontrollers")


def _spki_pin(cert_pem: bytes) -> str:
    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def console_cluster(
    cluster_factory: Callable[..., LocalCluster], tmp_path: Path
) -> Iterator[LocalCluster]:
    cluster = cluster_factory()
    controllers = ManagedProcess(
        "controller-manager",
        [
            sys.executable, "-m", "controlplane", "controller-manager",
            "--kubeconfig", str(cluster.component_kubeconfig("controller-manager")),
            "--controllers", "replicationcontroller", "--leader-elect", "false",
        ],
        tmp_path / "controller-manager.log",
    )  # fmt: skip
    controllers.start()
    yield cluster
    controllers.stop()


@pytest.fixture
def browser(console_cluster: LocalCluster, tmp_path: Path) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    pin = _spki_pin(console_cluster.pki.apiserver_cert.read_bytes())
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium'}",
        f"--ignore-certificate-errors-spki-list={pin}",
    ):  # fmt: skip
        options.add_argument(flag)
    # Every console message, Content-Security-Policy violations among them.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options
    )
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 30) -> Any:
    try:
        # The page re-renders as watch events arrive: an element found a
        # moment ago may be gone, and is looked up again.
        ignored = (NoSuchElementException, StaleElementReferenceException)
        wait = WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=ignored)
        return wait.until(condition)
    except TimeoutException:
        shown = driver.find_element(By.TAG_NAME, "body").get_attribute("innerHTML")
        shown = f"{driver.get_log('browser')}\n{shown}"
        raise AssertionError(
            f"not seen within {timeout} s; the page shows:\n{shown[:9000]}"
        ) from None


def _click(driver: Any, selector: str) -> None:
    """Click what the selector finds now, whatever re-rendered it."""
    driver.execute_script("document.querySelector(arguments[0]).click()", selector)


def _text(driver: Any) -> str:
    return str(driver.find_element(By.ID, "view").text)


def _screenshot(driver: Any, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / name))
    target = os.environ.get("CORRAL_CONSOLE_SCREENSHOTS")
    if target:
        shutil.copy(tmp_path / name, Path(target) / name)


def _sign_in(driver: Any, cluster: LocalCluster, token: str) -> None:
    driver.get(f"{cluster.url}/ui/")
    field = _wait(driver, lambda d: d.find_element(By.ID, "token"))
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
    _wait(driver, lambda d: d.find_element(By.ID, "nav").is_displayed())


def _csp_violations(driver: Any) -> list[str]:
    """What Chromium refused under the page's policy since last asked (it logs each)."""
    return [
        str(entry["message"])
        for entry in driver.get_log("browser")
        if "Content Security Policy" in str(entry.get("message", ""))
    ]


def _corral(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corralctl.main", *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _view_only_token(client: Client) -> str:
    assert SERVICEACCOUNTS and BINDINGS
    await client.create(SERVICEACCOUNTS, {"metadata": {"name": "viewer"}}, "default")
    await client.create(
        BINDINGS,
        {
            "metadata": {"name": "viewer-view"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": "default"}],
        },
    )
    answer = await client.subresource(SERVICEACCOUNTS, "viewer", "token", {"spec": {}}, "default")
    return str(answer["status"]["token"])


async def test_the_console_signs_in_watches_scales_applies_and_respects_rbac(
    console_cluster: LocalCluster, browser: Any, tmp_path: Path
) -> None:
    cluster = console_cluster
    assert PODS and NODES and RCS
    async with Client(cluster.client_config()) as client:
        for name in ("node-a", "node-b"):
            await client.create(
                NODES,
                {
                    "metadata": {"name": name},
                    "status": {
                        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                    },
                },
            )
        applied = _corral(cluster, "apply", "-f", str(EXAMPLE))
        assert applied.returncode == 0, applied.stderr
        viewer = await _view_only_token(client)

    # An anonymous browser gets the page, but not a byte of cluster data.
    browser.get(f"{cluster.url}/api/v1/pods")
    assert "Unauthorized" in browser.page_source

    _sign_in(browser, cluster, cluster.pki.admin_token())
    _wait(browser, lambda d: "node-a" in _text(d) and "node-b" in _text(d))
    _screenshot(browser, tmp_path, "console-overview.png")
    # The usage bars are sized from script: the policy allows no inline style.
    widths = browser.execute_script(
        "return [...document.querySelectorAll('.bar span')].map(s => s.style.width)"
    )
    assert widths and all(w.endswith("%") for w in widths), widths
    violations = _csp_violations(browser)

    browser.get(f"{cluster.url}/ui/#pods")
    _wait(browser, lambda d: "website-" in _text(d), 60)

    # Created from the CLI, it shows up with no reload.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "from-the-cli"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
    }
    created = subprocess.run(
        [sys.executable, "-m", "corralctl.main", "create", "-f", "-",
         "--kubeconfig", str(cluster.kubeconfig)],
        input=json.dumps(pod), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    _wait(browser, lambda d: "from-the-cli" in _text(d))

    # Scale the website (an RC: only the replication controller runs here) from the page.
    browser.get(f"{cluster.url}/ui/#workloads")
    row = '[data-workload="ReplicationController/default/website"]'
    scale_button = f"{row} button[data-action=scale]"
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, scale_button).is_enabled())
    _screenshot(browser, tmp_path, "console-workloads.png")
    _click(browser, scale_button)
    field = _wait(browser, lambda d: d.find_element(By.ID, "scale-to"))
    field.clear()
    field.send_keys("4")
    browser.find_element(By.ID, "confirm-ok").click()
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"{row} .desired").text == "4")
    async with Client(cluster.client_config()) as client:

        async def four() -> bool:
            found = await client.list(PODS, "default", label_selector="app=website")
            return len(found["items"]) == 4

        await eventually(four, timeout=30, message="4 website pods")
    browser.get(f"{cluster.url}/ui/#pods")
    _wait(browser, lambda d: _text(d).count("website-") == 4)

    # A bad manifest: the server's field error, shown against the field.
    browser.get(f"{cluster.url}/ui/#apply")
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
           "spec": {"containers": [{"name": "c"}]}}  # fmt: skip
    area = _wait(browser, lambda d: d.find_element(By.ID, "manifest"))
    browser.execute_script("arguments[0].value = arguments[1]", area, json.dumps(bad))
    _click(browser, "button[data-action=apply]")
    result = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#apply-result ul.causes"))
    assert "spec.containers[0].image" in result.text and "Required value" in result.text
    violations += _csp_violations(browser)

    # A view-only token: the button is disabled, and the API refuses anyway.
    _click(browser, "#signout")
    _sign_in(browser, cluster, viewer)
    browser.get(f"{cluster.url}/ui/#workloads")
    # Disabled once the page has asked the API (a dry-run scale) and been refused.
    denied = "your token may not scale this"
    button = _wait(
        browser,
        lambda d: (
            (b := d.find_element(By.CSS_SELECTOR, scale_button)).get_attribute("title") == denied
            and b
        ),
    )
    assert not button.is_enabled()
    refused = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch('/api/v1/namespaces/default/replicationcontrollers/website/scale', {
          method: 'PATCH',
          headers: {'Authorization': 'Bearer ' + arguments[0],
                    'Content-Type': 'application/merge-patch+json'},
          body: JSON.stringify({spec: {replicas: 9}})}).then(r => done(r.status));
        """,
        viewer,
    )
    assert refused == 403

    # Every view rendered, and the browser refused nothing the console does...
    violations += _csp_violations(browser)
    assert violations == []
    # ...while it does refuse what an injected attribute would do.
    browser.execute_script(
        "document.body.insertAdjacentHTML('beforeend', '<b style=\"color: red\">x</b>')"
    )
    _wait(browser, lambda d: _csp_violations(d), 10)


async def test_the_console_is_served_with_headers_that_confine_it(cluster: LocalCluster) -> None:
    connector = aiohttp.TCPConnector(ssl=cluster.ssl_context())
    async with aiohttp.ClientSession(cluster.url, connector=connector) as session:
        for path in ("/ui/", "/ui/app.js", "/ui/style.css"):
            async with session.get(path) as response:
                assert response.status == 200, path
                policy = response.headers["Content-Security-Policy"]
                assert response.headers["X-Frame-Options"] == "DENY"
                assert response.headers["Referrer-Policy"] == "no-referrer"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert directives["default-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"
        # The page itself: its script and style come from files, none inline.
        async with session.get("/ui/") as response:
            page = await response.text()
        assert "<script>" not in page and "<style" not in page and "style=" not in page


async def test_a_thousand_pods_stream_in_without_freezing_the_page(
    console_cluster: LocalCluster, browser: Any
) -> None:
    cluster = console_cluster
    assert PODS is not None
    _sign_in(browser, cluster, cluster.pki.admin_token())
    browser.get(f"{cluster.url}/ui/#pods")
    _wait(browser, lambda d: "pods" in _text(d))
    started = time.monotonic()
    async with Client(cluster.client_config(), max_connections=32) as client:
        bodies = [
            {
                "metadata": {"name": f"many-{i}", "labels": {"app": "many"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
            }
            for i in range(1000)
        ]
        for start in range(0, len(bodies), 50):
            await asyncio.gather(
                *(client.create(PODS, body, "default") for body in bodies[start : start + 50])
            )
    _wait(browser, lambda d: "1000 pods, first 500 shown" in _text(d), 120)
    seen = time.monotonic() - started
    # Responsive: a script round trip and a filter keystroke still answer.
    ping = time.monotonic()
    browser.execute_script("return document.querySelectorAll('#pods tbody tr').length")
    round_trip = time.monotonic() - ping
    browser.find_element(By.ID, "pod-filter").send_keys("many-999")
    _wait(browser, lambda d: "1 pods" in _text(d))
    print(f"\nFIGURE console: 1,000 pods created and shown in {seen:.1f} s; "
          f"script round trip {round_trip * 1000:.0f} ms")  # fmt: skip
