"""examples/gluster.json, for real, on three simulated hosts.

Three node agents, each making a network namespace of the testbed its host
(as in test_agent_network_cluster.py), with the scheduler and every
controller, run the stack built from examples/gluster/build.py's images. The
test then walks the acceptance lists of the stack and of its data tier
through Varnish's NodePort, as visitors and an editor would: the static site
(and a cache hit), a wiki page created through MediaWiki's API, the Awstats
report, MariaDB replication, a rollout and its undo of the wiki, and then,
with an editor saving a page every half second and every saved page read
back afterwards: a drain of the MariaDB primary's node (a switchover), an
image update of the MariaDB StatefulSet (replicas first, one switchover),
the primary's host cut off from the control plane only, the primary's host
killed, and the replica's host killed.

The figures it prints (FIGURE lines) are the ones docs/benchmarks.md records.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import http.cookies
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest

from corral import replication
from corral.client.rest import Client
from corral.objects import Obj
from corralctl.processes import free_port
from nodeagent.network.nsthread import acall_in_netns
from nodeagent.network.testbed import (
    SimHost,
    Testbed,
    cleanup,
    create_hosts,
    namespaces,
    run,
)
from tests.conftest import LocalCluster
from tests.e2e.conftest import AgentProcess, Agents, Dockerd, control_plane, wait_for_node
from tests.support import eventually, resource

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(3000)]

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "examples" / "gluster.json"
BUILD = ROOT / "examples" / "gluster" / "build.py"
PREFIX = "crl-e2eg"
NODE_PORT = 30080
WIKI_IMAGE = "corral.local/gluster/mediawiki:1.0"
WIKI_NEXT = "corral.local/gluster/mediawiki:1.1-e2e"
DB_IMAGE = "corral.local/gluster/mariadb:1.0"
DB_NEXT = "corral.local/gluster/mariadb:1.1-e2e"
# Short, so a lost node costs the test seconds rather than the default 35.
GRACE_SECONDS, TOLERATION_SECONDS = 8.0, 8.0
# How often the steady client asks, as the issue says: 5 requests a second.
CLIENT_INTERVAL = 0.2
# How often the editor saves a page: twice a second.
EDIT_INTERVAL = 0.5
# The nftables table that cuts a host off from the control plane.
CUT_TABLE = "crl_e2eg_cut"

PODS, NODES, PDBS = resource("pods"), resource("nodes"), resource("poddisruptionbudgets")
RCS, DEPLOYMENTS = resource("replicationcontrollers"), resource("deployments")
STATEFULSETS, LEASES = resource("statefulsets"), resource("leases")


def _secret() -> dict[str, str]:
    items = json.loads(MANIFEST.read_text())["items"]
    found = next(i for i in items if i["kind"] == "Secret")
    return dict(found["stringData"])


def _wiki_admin() -> tuple[str, str]:
    items = json.loads(MANIFEST.read_text())["items"]
    wiki = next(i for i in items if i["kind"] == "Deployment")
    env = {e["name"]: e for e in wiki["spec"]["template"]["spec"]["containers"][0]["env"]}
    return env["MEDIAWIKI_ADMIN_USER"]["value"], _secret()["wiki-admin-password"]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


class ControlPlaneRelay:
    """A loopback relay between one agent and the API server, so the test can cut it alone.

    The agent is told to reach the API server (REST and gRPC) through two
    ports of its own; dropping packets to those ports (nftables, in this
    machine's namespace) cuts that agent off from the control plane while
    its host and pods stay reachable, as a partition between a host and the
    masters would.
    """

    def __init__(self, api_port: int, agent_port: int) -> None:
        self.targets = {free_port(): api_port, free_port(): agent_port}
        self.servers: list[asyncio.AbstractServer] = []

    @property
    def rest_port(self) -> int:
        return next(iter(self.targets))

    @property
    def grpc_port(self) -> int:
        return list(self.targets)[1]

    async def start(self) -> None:
        for listen, target in self.targets.items():

            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: int = target
            ) -> None:
                try:
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
                except OSError:
                    writer.close()
                    return
                await asyncio.gather(
                    _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
                )

            self.servers.append(await asyncio.start_server(handle, "127.0.0.1", listen))

    def agent_args(self) -> tuple[str, ...]:
        return (
            "--server", f"https://127.0.0.1:{self.rest_port}",
            "--control", f"127.0.0.1:{self.grpc_port}",
        )  # fmt: skip

    async def cut(self) -> None:
        ports = ", ".join(str(p) for p in self.targets)
        rules = (
            f"table inet {CUT_TABLE} {{\n"
            f"  chain out {{ type filter hook output priority 0; "
            f"tcp dport {{ {ports} }} drop; tcp sport {{ {ports} }} drop; }}\n"
            "}\n"
        )
        process = await asyncio.create_subprocess_exec(
            "nft", "-f", "-", stdin=asyncio.subprocess.PIPE
        )
        await process.communicate(rules.encode())
        assert process.returncode == 0, "nft refused the cut"

    async def heal(self) -> None:
        await run("nft", "delete", "table", "inet", CUT_TABLE, check=False)

    async def close(self) -> None:
        await self.heal()
        for server in self.servers:
            server.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@dataclass
class Stack:
    cluster: LocalCluster
    client: Client
    bed: Testbed
    agents: list[AgentProcess]
    docker: docker.DockerClient
    root: Path
    relays: dict[str, ControlPlaneRelay] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)

    def host_of(self, node: str) -> SimHost:
        return self.bed.hosts[[a.node for a in self.agents].index(node)]

    def agent(self, node: str) -> AgentProcess:
        return next(a for a in self.agents if a.node == node)

    def other_host(self, *nodes: str) -> SimHost:
        avoided = {self.host_of(n).name for n in nodes}
        return next(h for h in self.bed.hosts if h.name not in avoided)

    async def corral(self, *args: str, timeout: float = 300) -> str:
        # On a thread: the steady client and the budget watcher share this
        # event loop and must keep running while a command (rollout status,
        # drain) waits.
        return await asyncio.to_thread(self._corral, args, timeout)

    def _corral(self, args: tuple[str, ...], timeout: float) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "corralctl.main", *args],
            env={**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"corral {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    async def pods(self, selector: str) -> list[Obj]:
        found = await self.client.list(PODS, "default", label_selector=selector)
        return [p for p in found["items"] if not p["metadata"].get("deletionTimestamp")]

    async def ready(self, selector: str) -> list[Obj]:
        return [p for p in await self.pods(selector) if _is_ready(p)]

    async def primary(self) -> Obj:
        """The pod elected primary, labelled so and ready."""

        async def found() -> Obj | None:
            ready = await self.ready("app=mariadb,role=primary")
            return ready[0] if len(ready) == 1 else None

        pod: Obj = await eventually(found, timeout=180, interval=1, message="one ready primary")
        return pod

    async def election(self) -> tuple[str, int]:
        lease = await self.client.get(LEASES, "mariadb.replication", "default")
        spec = lease.get("spec") or {}
        return str(spec.get("holderIdentity")), int(spec.get("leaseTransitions") or 0)

    async def http(
        self,
        path: str,
        *,
        via: SimHost,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Response:
        """A request to Varnish's NodePort on ``via``, from inside that host's namespace."""
        body = urllib.parse.urlencode(form).encode() if form is not None else None

        def fetch() -> Response:
            connection = http.client.HTTPConnection(via.ip, NODE_PORT, timeout=timeout)
            try:
                sent = {"Host": "www.gluster.org", **(headers or {})}
                if body is not None:
                    sent["Content-Type"] = "application/x-www-form-urlencoded"
                connection.request("POST" if body is not None else "GET", path, body, sent)
                answer = connection.getresponse()
                try:
                    text = answer.read().decode(errors="replace")
                except http.client.HTTPException as error:
                    # A body cut off mid-way is a failed request like any broken link.
                    raise OSError(f"incomplete response: {error!r}") from None
                head = {k.lower(): v for k, v in answer.getheaders()}
                cookies = [v for k, v in answer.getheaders() if k.lower() == "set-cookie"]
                if cookies:
                    head["set-cookie"] = "\n".join(cookies)
                return Response(answer.status, head, text)
            finally:
                connection.close()

        return await acall_in_netns(via.path, fetch)

    async def sql(self, pod: str, statement: str) -> str:
        password = _secret()["root-password"]
        return await self.corral(
            "exec", pod, "-c", "mariadb", "--",
            "mariadb", "-uroot", f"-p{password}", "-N", "-e", statement,
        )  # fmt: skip

    def figure(self, text: str) -> None:
        print(f"\nFIGURE {text}", flush=True)
        self.figures.append(text)


def _is_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _node(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName", ""))


def _name(pod: Obj) -> str:
    return str(pod["metadata"]["name"])


def _tagged(dockerd: Dockerd, image: str, tag: str, files: dict[str, str]) -> None:
    """A next revision of ``image``: the same, plus ``files``."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        lines = [f"FROM {image}"] + [f"COPY {name} /{name}" for name in files]
        for name, data in (("Dockerfile", "\n".join(lines) + "\n"), *files.items()):
            encoded = data.encode()
            info = tarfile.TarInfo(name)
            info.size = len(encoded)
            tar.addfile(info, io.BytesIO(encoded))
    context.seek(0)
    dockerd.client().images.build(fileobj=context, custom_context=True, tag=tag, rm=True)


def _build_images(dockerd: Dockerd, root: Path) -> None:
    """The six images from build.py, and next revisions of MediaWiki's and MariaDB's."""
    log = root / "build.log"
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, str(BUILD), "--docker-host", dockerd.host],
            stdout=out, stderr=subprocess.STDOUT, timeout=1500, check=False,
        )  # fmt: skip
    assert done.returncode == 0, f"build.py failed:\n{log.read_text(errors='replace')[-6000:]}"
    # The wiki's next revision differs in a file it serves, so the test can
    # see which revision answered.
    _tagged(dockerd, WIKI_IMAGE, WIKI_NEXT, {"var/lib/mediawiki/revision.txt": "1.1\n"})
    _tagged(dockerd, DB_IMAGE, DB_NEXT, {"etc/corral-revision": "1.1\n"})


@pytest.fixture
async def stack(
    cluster_factory: Callable[..., LocalCluster], dockerd: Dockerd, tmp_path: Path
) -> AsyncIterator[Stack]:
    started = time.monotonic()
    _build_images(dockerd, tmp_path)
    await cleanup(prefix=PREFIX)
    await run("nft", "delete", "table", "inet", CUT_TABLE, check=False)
    bed = await create_hosts(3, prefix=PREFIX)
    cluster = cluster_factory()
    processes = control_plane(cluster, tmp_path, grace=GRACE_SECONDS, toleration=TOLERATION_SECONDS)
    for process in processes:
        process.start()
    pool = Agents(cluster, dockerd, tmp_path)
    relays: list[ControlPlaneRelay] = []
    try:
        agents = []
        for host in bed.hosts:
            relay = ControlPlaneRelay(cluster.apiserver.port, cluster.apiserver.agent_port)
            await relay.start()
            relays.append(relay)
            agents.append(
                pool.start(
                    extra=("--network-netns", host.name, "--node-ip", host.ip, *relay.agent_args())
                )
            )
        for agent in agents:
            # On a thread: the relays run on this event loop.
            await asyncio.to_thread(wait_for_node, cluster, agent.node)
        async with Client(cluster.client_config(), max_connections=16) as client:
            made = Stack(cluster, client, bed, agents, dockerd.client(), tmp_path)
            made.relays = {a.node: r for a, r in zip(agents, relays, strict=True)}
            await made.corral("apply", "-f", str(MANIFEST))
            await _all_workloads_ready(made, timeout=900)
            made.figure(
                f"gluster stack: images, 3 hosts and every workload ready in "
                f"{time.monotonic() - started:.0f} s"
            )
            yield made
    finally:
        for agent in pool.started:
            if agent.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(agent.process.pid, signal.SIGCONT)
        for relay in relays:
            await relay.close()
        pool.stop_all()
        for process in processes:
            process.stop()
        await cleanup(bed, prefix=PREFIX)
        for image in (WIKI_NEXT, DB_NEXT):
            with contextlib.suppress(docker.errors.APIError):
                dockerd.client().images.remove(image, force=True)
    assert not {n for n in namespaces() if n.startswith(PREFIX)}


async def _all_workloads_ready(stack: Stack, timeout: float) -> None:
    async def ready() -> bool:
        workloads = [
            *(await stack.client.list(RCS, "default"))["items"],
            *(await stack.client.list(DEPLOYMENTS, "default"))["items"],
            *(await stack.client.list(STATEFULSETS, "default"))["items"],
        ]
        if len(workloads) < 4:
            return False
        for workload in workloads:
            wanted = workload["spec"].get("replicas", 1)
            status = workload.get("status") or {}
            if status.get("readyReplicas", 0) != wanted:
                return False
            if workload["kind"] == "Deployment" and status.get("updatedReplicas", 0) != wanted:
                return False
        return len(await stack.ready("app=mariadb,role=primary")) == 1 and bool(
            await stack.ready("app=mariadb,role=replica")
        )

    await eventually(ready, timeout=timeout, interval=2, message="every workload ready")
    # Varnish marks a backend healthy after three good probes, five seconds apart.
    await eventually(
        lambda: _front_door_answers(stack),
        timeout=120,
        interval=1,
        message="the site and the wiki through Varnish",
    )


async def _front_door_answers(stack: Stack, via: SimHost | None = None) -> bool:
    try:
        site = await stack.http("/", via=via or stack.bed.hosts[0])
        wiki = await stack.http("/w/index.php?title=Main_Page", via=via or stack.bed.hosts[0])
    except OSError:
        return False
    return site.status == 200 and wiki.status == 200


class Editor:
    """Saves a new wiki page every EDIT_INTERVAL through Varnish, and remembers which were saved.

    It logs in as the wiki's administrator, whom MediaWiki does not
    rate-limit. A page counts as saved (acknowledged) only when MediaWiki
    answered ``Success``; ``lost`` reads every one of them back afterwards.
    """

    def __init__(self, stack: Stack, via: SimHost, prefix: str) -> None:
        self.stack, self.via, self.prefix = stack, via, prefix
        self.sent = 0
        self.acked: list[tuple[int, float]] = []
        self.failures: list[tuple[int, float, str]] = []
        self.cookies: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._logged_in = False

    def now(self) -> float:
        return time.monotonic()

    def _remember(self, answer: Response) -> None:
        for line in answer.headers.get("set-cookie", "").split("\n"):
            if not line:
                continue
            jar = http.cookies.SimpleCookie()
            jar.load(line)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value

    def _headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    async def _api(self, params: dict[str, str], *, post: bool = False) -> Obj:
        query = {**params, "format": "json"}
        if post:
            answer = await self.stack.http(
                "/w/api.php", via=self.via, form=query, headers=self._headers(), timeout=10
            )
        else:
            path = "/w/api.php?" + urllib.parse.urlencode(query)
            answer = await self.stack.http(path, via=self.via, headers=self._headers(), timeout=10)
        self._remember(answer)
        if answer.status != 200:
            raise OSError(f"HTTP {answer.status}")
        found: Obj = json.loads(answer.body)
        return found

    async def login(self) -> None:
        user, password = _wiki_admin()
        tokens = await self._api({"action": "query", "meta": "tokens", "type": "login"})
        token = tokens["query"]["tokens"]["logintoken"]
        done = await self._api(
            {"action": "login", "lgname": user, "lgpassword": password, "lgtoken": token},
            post=True,
        )
        if done.get("login", {}).get("result") != "Success":
            raise OSError(f"login: {done}")
        self._logged_in = True

    async def _save(self, number: int) -> None:
        if not self._logged_in:
            await self.login()
        tokens = await self._api({"action": "query", "meta": "tokens"})
        token = tokens["query"]["tokens"]["csrftoken"]
        answer = await self._api(
            {
                "action": "edit",
                "title": f"{self.prefix}_{number}",
                "text": f"edit {number}",
                "token": token,
                "assert": "user",
            },
            post=True,
        )
        if answer.get("edit", {}).get("result") != "Success":
            code = str((answer.get("error") or {}).get("code", answer))
            if code in ("badtoken", "assertuserfailed", "assertnameduserfailed"):
                self._logged_in = False  # a session lost with a database: log in again
            raise OSError(code[:200])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stop.is_set():
            self.sent += 1
            number = self.sent
            try:
                await self._save(number)
                self.acked.append((number, self.now()))
            except (OSError, KeyError, ValueError) as error:
                self.failures.append((number, self.now(), repr(error)[:200]))
            next_at += EDIT_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, next_at - loop.time()))

    async def saves(self, count: int, timeout: float = 300) -> None:
        """Return once ``count`` more pages have been saved."""
        target = len(self.acked) + count
        await eventually(
            lambda: len(self.acked) >= target,
            timeout=timeout,
            interval=EDIT_INTERVAL / 2,
            message=f"{count} more saved pages",
        )

    def longest_gap(self, since: float) -> float:
        """The longest time without a saved page, from the last save before ``since`` on."""
        times = [t for _, t in self.acked]
        before = [t for t in times if t < since]
        after = [t for t in times if t >= since]
        points = ([before[-1]] if before else [since]) + after
        return max((b - a for a, b in itertools.pairwise(points)), default=float("inf"))

    def first_save_after(self, since: float) -> float:
        """Seconds from ``since`` to the first page saved after it."""
        return next((t - since for _, t in self.acked if t >= since), float("inf"))

    async def lost(self) -> list[int]:
        """The saved pages that cannot be read back."""
        missing: list[int] = []
        numbers = [n for n, _ in self.acked]
        for start in range(0, len(numbers), 50):
            batch = numbers[start : start + 50]
            titles = "|".join(f"{self.prefix}_{n}" for n in batch)
            answer = await self.stack.http(
                "/w/api.php?"
                + urllib.parse.urlencode(
                    {
                        "action": "query", "prop": "revisions", "rvprop": "content",
                        "rvslots": "main", "titles": titles, "format": "json",
                        "formatversion": "2", "nocache": str(time.monotonic_ns()),
                    }
                ),
                via=self.via,
            )  # fmt: skip
            assert answer.status == 200, answer
            pages = {p["title"]: p for p in json.loads(answer.body)["query"]["pages"]}
            for number in batch:
                page = pages.get(f"{self.prefix} {number}") or pages.get(f"{self.prefix}_{number}")
                content = (
                    page["revisions"][0]["slots"]["main"]["content"]
                    if page and not page.get("missing")
                    else None
                )
                if content != f"edit {number}":
                    missing.append(number)
        return missing

    async def __aenter__(self) -> Editor:
        await eventually(self._login_quietly, timeout=120, interval=1, message="the editor's login")
        self._task = asyncio.create_task(self._run())
        return self

    async def _login_quietly(self) -> bool:
        try:
            await self.login()
        except (OSError, KeyError, ValueError):
            return False
        return True

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 60)

    def report(self) -> str:
        return f"{len(self.acked)} pages saved, {len(self.failures)} attempts failed"

    def print_failures(self, since: float) -> None:
        """What the failed attempts met, for the log: which part of the gap was what."""
        for number, at, error in self.failures[:12]:
            print(f"  save #{number} at +{at - since:.1f} s: {error}", flush=True)


class SteadyClient:
    """Requests through Varnish every CLIENT_INTERVAL, counting what fails."""

    def __init__(self, stack: Stack, via: SimHost, path: str) -> None:
        self.stack, self.via, self.path = stack, via, path
        self.sent = 0
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stop.is_set():
            self.sent += 1
            # Every request a different URL: each one reaches a backend,
            # rather than Varnish's cache.
            separator = "&" if "?" in self.path else "?"
            try:
                answer = await self.stack.http(
                    f"{self.path}{separator}probe={self.sent}", via=self.via, timeout=10
                )
                if answer.status != 200:
                    self.failures.append(f"#{self.sent}: HTTP {answer.status}")
            except OSError as error:
                self.failures.append(f"#{self.sent}: {error!r}")
            next_at += CLIENT_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, next_at - loop.time()))

    async def requests(self, count: int) -> None:
        """Return once ``count`` more requests have been sent: a window measured in requests."""
        target = self.sent + count
        await eventually(
            lambda: self.sent >= target,
            timeout=count * CLIENT_INTERVAL + 60,
            interval=CLIENT_INTERVAL / 2,
            message=f"{count} more requests",
        )

    async def __aenter__(self) -> SteadyClient:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 30)


# --- the acceptance steps ------------------------------------------------------------------


async def _static_site_and_cache_hit(stack: Stack) -> None:
    via = stack.bed.hosts[1]
    first = await stack.http("/documentation/", via=via)
    assert first.status == 200 and "Gluster" in first.body, first
    second = await stack.http("/documentation/", via=via)
    assert second.status == 200 and second.headers.get("x-cache") == "HIT", second.headers
    front = await stack.http("/", via=via)
    assert front.status == 200 and "<html" in front.body.lower()


async def _wiki_page_through_the_api(stack: Stack, title: str, text: str) -> None:
    via = stack.bed.hosts[2]
    tokens = await stack.http("/w/api.php?action=query&meta=tokens&format=json", via=via)
    assert tokens.status == 200, tokens
    token = json.loads(tokens.body)["query"]["tokens"]["csrftoken"]
    edit = await stack.http(
        "/w/api.php",
        via=via,
        form={"action": "edit", "title": title, "text": text, "summary": "e2e", "token": token,
              "format": "json"},
    )  # fmt: skip
    assert edit.status == 200 and json.loads(edit.body)["edit"]["result"] == "Success", edit
    await _page_reads_back(stack, title, text, via=stack.bed.hosts[0])


async def _page_reads_back(stack: Stack, title: str, text: str, *, via: SimHost) -> None:
    answer = await stack.http(
        "/w/api.php?action=query&prop=revisions&rvprop=content&rvslots=main"
        f"&titles={title}&format=json&formatversion=2&nocache={time.monotonic_ns()}",
        via=via,
    )
    assert answer.status == 200, answer
    page = json.loads(answer.body)["query"]["pages"][0]
    assert page["revisions"][0]["slots"]["main"]["content"] == text, page
    rendered = await stack.http(f"/wiki/{title}", via=via)
    assert rendered.status == 200 and "<b>gluster</b>" in rendered.body


async def _awstats_report(stack: Stack) -> None:
    async def report() -> Response | None:
        answer = await stack.http("/awstats/", via=stack.bed.hosts[0])
        # The sidecar writes its first report once varnishncsa's log has lines.
        if answer.status == 200 and "www.gluster.org" in answer.body:
            return answer
        return None

    found = await eventually(report, timeout=180, interval=3, message="the Awstats report")
    assert "AWStats" in found.body or "awstats" in found.body


async def _replicates(stack: Stack, marker: str) -> None:
    # Waited for, not assumed: right after a host comes back (the last step
    # before the final check) a CI run once found no labelled, ready replica.
    primary_pod, replica_pod = await _full_redundancy(stack)
    primary, replica = _name(primary_pod), _name(replica_pod)
    database = _secret()["wiki-database"]
    await stack.sql(
        primary,
        f"CREATE TABLE IF NOT EXISTS {database}.e2e (note VARCHAR(60) PRIMARY KEY);"
        f"INSERT INTO {database}.e2e VALUES ('{marker}');",
    )
    await eventually(
        lambda: _has_row(stack, replica, marker),
        timeout=120,
        interval=2,
        message=f"{marker!r} on the replica {replica}",
    )


async def _has_row(stack: Stack, pod: str, marker: str) -> bool:
    database = _secret()["wiki-database"]
    return marker in await stack.sql(pod, f"SELECT note FROM {database}.e2e")


async def _move_varnish_off(stack: Stack, node: str, via: SimHost) -> None:
    await stack.corral("cordon", node)
    for pod in await stack.pods("app=varnish"):
        await stack.corral("delete", "pod", pod["metadata"]["name"])

    async def elsewhere() -> bool:
        ready = await stack.ready("app=varnish")
        return bool(ready) and all(_node(p) != node for p in ready)

    await eventually(elsewhere, timeout=180, interval=1, message="Varnish on another node")
    await stack.corral("uncordon", node)

    async def answers() -> bool:
        try:
            siteinfo = "/w/api.php?action=query&meta=siteinfo&format=json"
            return (await stack.http(siteinfo, via=via)).status == 200
        except OSError:
            return False

    # Its backends count as healthy after three good probes, 5 s apart.
    await eventually(answers, timeout=120, interval=1, message="the wiki through the new Varnish")


async def _count_ready(stack: Stack, selector: str, wanted: int) -> bool:
    return len(await stack.ready(selector)) >= wanted


async def _images_of(stack: Stack, selector: str) -> set[str]:
    return {c["image"] for p in await stack.pods(selector) for c in p["spec"]["containers"]}


async def _rollout_and_undo(stack: Stack, title: str, text: str) -> None:
    via = stack.bed.hosts[0]
    steady_path = f"/w/api.php?action=query&titles={title}&format=json"
    async with SteadyClient(stack, via, steady_path) as steady:
        await stack.corral("set", "image", "deployment/mediawiki", f"mediawiki={WIKI_NEXT}")
        await stack.corral(
            "rollout", "status", "deployment/mediawiki", "--timeout", "600s", timeout=660
        )

        async def only_next() -> bool:
            return await _images_of(stack, "app=mediawiki") == {WIKI_NEXT}

        await eventually(only_next, timeout=120, interval=1, message="old revision gone")
        revision = await stack.http(f"/w/revision.txt?r={time.monotonic_ns()}", via=via)
        assert revision.status == 200 and revision.body.strip() == "1.1", revision
        await _page_reads_back(stack, title, text, via=via)

        await stack.corral("rollout", "undo", "deployment/mediawiki")
        await stack.corral(
            "rollout", "status", "deployment/mediawiki", "--timeout", "600s", timeout=660
        )

        async def only_first() -> bool:
            return await _images_of(stack, "app=mediawiki") == {WIKI_IMAGE}

        await eventually(only_first, timeout=120, interval=1, message="undo complete")
        revision = await stack.http(f"/w/revision.txt?r={time.monotonic_ns()}", via=via)
        assert revision.status == 404, revision
        await steady.requests(10)
    stack.figure(
        f"rollout and undo of mediawiki under 5 req/s: {len(steady.failures)} of "
        f"{steady.sent} requests failed"
    )
    assert not steady.failures, steady.failures[:20]
    await _page_reads_back(stack, title, text, via=via)


# --- the data tier: one primary, no saved page lost ---------------------------------------


async def _full_redundancy(stack: Stack, avoid: str = "") -> tuple[Obj, Obj]:
    """Wait for one ready primary and one ready replica following it, neither on ``avoid``."""

    async def both() -> tuple[Obj, Obj] | None:
        primaries = await stack.ready("app=mariadb,role=primary")
        replicas = await stack.ready("app=mariadb,role=replica")
        if len(primaries) != 1 or len(replicas) != 1:
            return None
        if avoid and avoid in (_node(primaries[0]), _node(replicas[0])):
            return None
        return primaries[0], replicas[0]

    found: tuple[Obj, Obj] = await eventually(
        both, timeout=420, interval=1, message="a primary and a replica again"
    )
    return found


async def _editing_host(stack: Stack, *avoid: str) -> SimHost:
    """A host to edit through, away from ``avoid``; Varnish is moved off them first."""
    via = stack.other_host(*avoid)
    for node in avoid:
        if any(_node(p) == node for p in await stack.pods("app=varnish")):
            await _move_varnish_off(stack, node, via)
    return via


async def _check_saved(stack: Stack, editor: Editor, step: str) -> None:
    lost = await editor.lost()
    assert not lost, f"{step}: saved pages lost: {lost[:20]} ({editor.report()})"


async def _drain_the_primarys_node(stack: Stack) -> None:
    """A drain is a planned switchover: the role moves before the primary goes."""
    primary = await stack.primary()
    drained = _node(primary)
    holder, epoch = await stack.election()
    assert holder == _name(primary)
    via = await _editing_host(stack, drained)
    lowest = 2
    stop = asyncio.Event()

    async def watch_budget() -> None:
        nonlocal lowest
        while not stop.is_set():
            lowest = min(lowest, len(await stack.ready("app=mariadb")))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.3)

    async with Editor(stack, via, "Drain") as editor:
        await editor.saves(10)
        watcher = asyncio.create_task(watch_budget())
        started = editor.now()
        try:
            await stack.corral(
                "drain", drained, "--ignore-daemonsets", "--delete-emptydir-data",
                "--timeout", "300s", timeout=360,
            )  # fmt: skip
        finally:
            stop.set()
            await asyncio.wait_for(watcher, 30)
        new_primary = await stack.primary()
        await editor.saves(10)
    gap = editor.longest_gap(started)
    editor.print_failures(started)
    stack.figure(
        f"drain of the MariaDB primary's node: longest write gap {gap:.1f} s "
        f"({editor.report()}); fewest ready MariaDB pods during the drain: {lowest}"
    )
    await _check_saved(stack, editor, "drain")
    assert _node(new_primary) != drained
    # A switchover, not a failover: one election, to the replica that had caught up.
    assert await stack.election() == (_name(new_primary), epoch + 1)
    assert lowest >= 1, "the drain took MariaDB below its budget's minAvailable"
    await stack.corral("uncordon", drained)
    await _full_redundancy(stack)


async def _image_update_of_the_set(stack: Stack) -> None:
    """An image update replaces the replica first, then hands over once, then the old primary."""
    primary = await stack.primary()
    _, epoch = await stack.election()
    via = stack.bed.hosts[0]
    replaced: list[str] = []
    uids = {_name(p): p["metadata"]["uid"] for p in await stack.pods("app=mariadb")}
    stop = asyncio.Event()

    async def watch_replacements() -> None:
        while not stop.is_set():
            listed = (await stack.client.list(PODS, "default", label_selector="app=mariadb"))[
                "items"
            ]
            for pod in listed:
                name, uid = _name(pod), pod["metadata"]["uid"]
                gone = pod["metadata"].get("deletionTimestamp") or uids.get(name) != uid
                if gone and name not in replaced:
                    replaced.append(name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.3)

    async with Editor(stack, via, "Upgrade") as editor:
        await editor.saves(10)
        watcher = asyncio.create_task(watch_replacements())
        started = editor.now()
        try:
            await stack.corral("set", "image", "statefulset/mariadb", f"mariadb={DB_NEXT}")

            async def updated() -> bool:
                pods = await stack.ready("app=mariadb")
                images = {c["image"] for p in pods for c in p["spec"]["containers"]}
                return len(pods) == 2 and images == {DB_NEXT}

            await eventually(updated, timeout=600, interval=1, message="both copies updated")
            await _full_redundancy(stack)
        finally:
            stop.set()
            await asyncio.wait_for(watcher, 30)
        await editor.saves(10)
    gap = editor.longest_gap(started)
    editor.print_failures(started)
    stack.figure(
        f"image update of the MariaDB StatefulSet: longest write gap {gap:.1f} s "
        f"({editor.report()}); replaced in order {replaced}"
    )
    await _check_saved(stack, editor, "image update")
    assert replaced and replaced[-1] == _name(primary), f"the primary went last: {replaced}"
    holder, after = await stack.election()
    assert after == epoch + 1, f"one switchover, not {after - epoch} elections"
    assert holder != _name(primary)


async def _cut_the_primary_off_the_control_plane(stack: Stack) -> None:
    """Only the control plane loses the primary's host: it fences itself, a replica takes over."""
    primary = await stack.primary()
    node, name = _node(primary), _name(primary)
    hooks = replication.hooks_of(primary)
    assert hooks is not None
    via = stack.other_host(node)
    async with Editor(stack, via, "Partition") as editor:
        await editor.saves(10)
        cut_at = editor.now()
        await stack.relays[node].cut()
        try:
            # Half a lease on, and before any successor can be elected, the old
            # primary takes no writes: its agent fenced it.
            async def fenced() -> bool:
                try:
                    return (await stack.sql(name, "SELECT @@global.read_only")).strip() == "1"
                except AssertionError:  # the exec itself failed: ask again
                    return False

            await eventually(
                fenced,
                timeout=hooks.fence_seconds + 2,
                interval=0.5,
                message=f"{name} read-only while cut off",
            )

            async def elected_elsewhere() -> bool:
                holder, _ = await stack.election()
                return holder != name

            await eventually(elected_elsewhere, timeout=120, interval=0.5, message="a new primary")
            elected_after = editor.now() - cut_at
            await editor.saves(10)
        finally:
            await stack.relays[node].heal()
        await _full_redundancy(stack)
        await editor.saves(5)
    stack.figure(
        f"primary's host cut off from the control plane: read-only within "
        f"{hooks.fence_seconds + 2:.0f} s, successor elected after {elected_after:.1f} s, "
        f"writes again after {editor.first_save_after(cut_at):.1f} s, longest write gap "
        f"{editor.longest_gap(cut_at):.1f} s ({editor.report()})"
    )
    await _check_saved(stack, editor, "partition")


async def _kill_host(stack: Stack, node: str) -> None:
    """The host dies: its agent freezes, its containers go, its link is cut."""
    os.kill(stack.agent(node).process.pid or 0, signal.SIGSTOP)

    def remove_containers() -> None:
        for container in stack.docker.containers.list(
            all=True, filters={"label": f"io.corral.node={node}"}
        ):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)

    # On a thread: the relays to the control plane run on this event loop.
    await asyncio.to_thread(remove_containers)
    await run("ip", "netns", "exec", stack.host_of(node).name, "ip", "link", "set", "eth0", "down")


async def _revive_host(stack: Stack, node: str) -> None:
    await run("ip", "netns", "exec", stack.host_of(node).name, "ip", "link", "set", "eth0", "up")
    os.kill(stack.agent(node).process.pid or 0, signal.SIGCONT)

    async def back() -> bool:
        found = await stack.client.get(NODES, node)
        conditions = (found.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    await eventually(back, timeout=180, interval=1, message=f"{node} Ready again")


async def _lose_the_primarys_host(stack: Stack) -> None:
    """The hard case: the host holding the primary's data dies."""
    primary = await stack.primary()
    victim, old = _node(primary), primary["metadata"]["uid"]
    via = await _editing_host(stack, victim)
    async with Editor(stack, via, "Failover") as editor:
        await editor.saves(10)
        lost_at = editor.now()
        await _kill_host(stack, victim)
        await editor.saves(10, timeout=180)
        resumed = editor.first_save_after(lost_at)
        _, replica = await _full_redundancy(stack, avoid=victim)
        redundant_after = editor.now() - lost_at
        await editor.saves(5)
    stack.figure(
        f"MariaDB primary's host lost under an editor saving twice a second: writes again "
        f"after {resumed:.1f} s, longest write gap {editor.longest_gap(lost_at):.1f} s, "
        f"one primary and one replica on the surviving hosts after {redundant_after:.0f} s "
        f"({editor.report()})"
    )
    await _check_saved(stack, editor, "primary's host lost")
    assert _node(replica) != victim

    await _revive_host(stack, victim)
    # The old primary's pod was replaced elsewhere: nothing of it runs on the
    # returning host, so it serves no write.
    await asyncio.sleep(10)
    leftovers = await asyncio.to_thread(
        stack.docker.containers.list, filters={"label": f"io.corral.node={victim}"}
    )
    assert not [c for c in leftovers if c.labels.get("io.corral.pod.uid") == old], leftovers
    primaries = await stack.pods("app=mariadb,role=primary")
    assert len(primaries) == 1 and _node(primaries[0]) != victim


async def _lose_the_replicas_host(stack: Stack) -> None:
    """The replica's host dies: the primary goes on alone once semi-sync stops waiting.

    It stops at once when it sees the replica's connection close, and after
    its 5 s timeout when the connection just goes silent.
    """
    _, replica = await _full_redundancy(stack)
    victim = _node(replica)
    via = await _editing_host(stack, victim)
    async with Editor(stack, via, "ReplicaLost") as editor:
        await editor.saves(10)
        lost_at = editor.now()
        await _kill_host(stack, victim)
        await editor.saves(10, timeout=120)
        stack.figure(
            f"MariaDB replica's host lost: longest write gap {editor.longest_gap(lost_at):.1f} s "
            f"(semi-synchronous replication goes on alone once no replica is connected, or "
            f"after 5 s without an answer; {editor.report()})"
        )
        await _full_redundancy(stack, avoid=victim)
        await editor.saves(5)
    await _check_saved(stack, editor, "replica's host lost")
    await _revive_host(stack, victim)


async def _each_copy_has_a_dns_name(stack: Stack) -> None:
    """The headless Service gives every copy a name of its own, as a StatefulSet's pods have."""
    wiki = _name((await stack.ready("app=mediawiki"))[0])
    for pod in await stack.pods("app=mariadb"):
        name = f"{_name(pod)}.mariadb.default.svc.cluster.local"

        async def resolves(name: str = name, pod: Obj = pod) -> bool:
            try:
                answer = await stack.corral("exec", wiki, "--", "getent", "hosts", name)
            except AssertionError:  # not (yet) resolvable: getent exits 2
                return False
            return answer.split()[:1] == [pod["status"]["podIP"]]

        await eventually(resolves, timeout=60, interval=2, message=f"{name} resolving")


async def test_the_gluster_stack_runs_and_survives_on_three_hosts(stack: Stack) -> None:
    title, text = "Corral_E2E", "This page was written through the API of a '''gluster''' wiki."
    await _static_site_and_cache_hit(stack)
    await _wiki_page_through_the_api(stack, title, text)
    await _awstats_report(stack)
    await _replicates(stack, "written-on-the-primary")
    await _each_copy_has_a_dns_name(stack)
    await _rollout_and_undo(stack, title, text)
    await _drain_the_primarys_node(stack)
    await _image_update_of_the_set(stack)
    await _cut_the_primary_off_the_control_plane(stack)
    await _lose_the_primarys_host(stack)
    await _lose_the_replicas_host(stack)
    await _replicates(stack, "written-after-every-loss")
    await _page_reads_back(stack, title, text, via=stack.bed.hosts[0])
