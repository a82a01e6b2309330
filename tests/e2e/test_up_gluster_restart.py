"""``./dev up``, Ctrl-C, ``./dev up`` again: every wiki page saved before is still there.

The real ``corral up`` runs examples/gluster.json on three simulated hosts
with the test session's dockerd, as ``./dev up`` does. An editor saves pages
through the published port; ``corral up`` is stopped with SIGINT (Ctrl-C),
which removes the hosts and their containers; a second ``corral up`` on the
same data directory brings the stack back from etcd and the agents' volume
directories, and every saved page must read back.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.objects import Obj
from corralctl import localcluster
from corralctl.dockerd import Dockerd
from corralctl.processes import free_port
from tests.conftest import unique_name

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "examples" / "gluster.json"
BUILD = ROOT / "examples" / "gluster" / "build.py"
NODE_PORT = 30080


def _wiki_admin() -> tuple[str, str]:
    items = json.loads(MANIFEST.read_text())["items"]
    secret = next(i for i in items if i["kind"] == "Secret")["stringData"]
    wiki = next(i for i in items if i["kind"] == "Deployment")
    env = {e["name"]: e for e in wiki["spec"]["template"]["spec"]["containers"][0]["env"]}
    return env["MEDIAWIKI_ADMIN_USER"]["value"], secret["wiki-admin-password"]


class Wiki:
    """MediaWiki's API through the published loopback port, with a session of its own."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/w/api.php"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def call(self, params: dict[str, str], *, post: bool = False) -> Obj:
        query = urllib.parse.urlencode({**params, "format": "json"})
        request = urllib.request.Request(
            self.base if post else f"{self.base}?{query}",
            data=query.encode() if post else None,
            headers={"Host": "www.gluster.org"},
        )
        with self.opener.open(request, timeout=30) as response:
            found: Obj = json.loads(response.read())
            return found

    def login(self) -> None:
        user, password = _wiki_admin()
        token = self.call({"action": "query", "meta": "tokens", "type": "login"})["query"]
        done = self.call(
            {
                "action": "login",
                "lgname": user,
                "lgpassword": password,
                "lgtoken": token["tokens"]["logintoken"],
            },
            post=True,
        )
        assert done["login"]["result"] == "Success", done

    def save(self, title: str, text: str) -> None:
        token = self.call({"action": "query", "meta": "tokens"})["query"]["tokens"]["csrftoken"]
        done = self.call(
            {"action": "edit", "title": title, "text": text, "token": token, "assert": "user"},
            post=True,
        )
        assert done.get("edit", {}).get("result") == "Success", done

    def content(self, title: str) -> str | None:
        found = self.call(
            {
                "action": "query", "prop": "revisions", "rvprop": "content",
                "rvslots": "main", "titles": title, "formatversion": "2",
            }
        )["query"]["pages"][0]  # fmt: skip
        if found.get("missing"):
            return None
        text: str = found["revisions"][0]["slots"]["main"]["content"]
        return text


@dataclass
class Up:
    argv: list[str]
    data: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_up(self, since: int, timeout: float = 1200) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"corral up exited:\n{self.output()[-6000:]}")
            if "corral is up" in self.output()[since:]:
                return
            time.sleep(2)
        raise AssertionError(f"corral up not ready:\n{self.output()[-6000:]}")

    def interrupt(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(300)


def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, AssertionError, KeyError, ValueError):
            last = check()
            if last:
                return last
        time.sleep(2)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")


@pytest.fixture
def up(dockerd: Dockerd, tmp_path: Path) -> Iterator[tuple[Up, int]]:
    built = subprocess.run(
        [sys.executable, str(BUILD), "--docker-host", dockerd.host],
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    data = tmp_path / "data"
    local = free_port()
    argv = [
        sys.executable, "-m", "corralctl.main", "up",
        "--data-dir", str(data),
        "--port", str(free_port()),
        "--docker-host", dockerd.host,
        "--node-name", unique_name("gup"),
        "--simulated-hosts", "3",
        "--apply", str(MANIFEST),
        "--wait",
        "--publish", f"{local}:{NODE_PORT}",
    ]  # fmt: skip
    handle = Up(argv, data, tmp_path / "up.log")
    try:
        yield handle, local
    finally:
        if handle.process is not None and handle.process.poll() is None:
            handle.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                handle.process.wait(180)
        subprocess.run(
            [sys.executable, "-m", "corralctl.main", "down", "--data-dir", str(data), "--purge"],
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        assert localcluster.leftover_processes(data) == {}


def test_pages_saved_before_a_ctrl_c_are_there_after_the_next_up(up: tuple[Up, int]) -> None:
    cluster, port = up
    cluster.start()
    cluster.wait_up(0)
    wiki = Wiki(port)
    _until(lambda: wiki.login() or True, 300, "the wiki's login")
    saved = []
    for number in range(10):
        title = f"Restart_{number}"
        wiki.save(title, f"saved before the restart ({number})")
        saved.append(title)

    assert cluster.interrupt() == 0
    assert "stopped." in cluster.output()
    mark = len(cluster.output())
    cluster.start()
    cluster.wait_up(mark)
    wiki = Wiki(port)
    _until(lambda: wiki.login() or True, 300, "the wiki's login after the restart")
    for number, title in enumerate(saved):
        assert wiki.content(title) == f"saved before the restart ({number})", title
    # And the stack takes writes again: the elected primary was promoted anew.
    _until(lambda: wiki.save("Restart_after", "saved after the restart") or True, 300, "a save")
