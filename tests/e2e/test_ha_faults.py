"""Fault injection on ``corral up --masters 3``: nothing acknowledged is lost (issue 21, part 4).

In the manner of etcd's robustness tests and Jepsen: a steady write load
goes through the HAProxy URL while a fault is injected, then a checker
reads the history back.

The load: creators make ConfigMaps with unique names, incrementers
read-modify-write one counter ConfigMap under optimistic concurrency
(``resourceVersion`` on the PUT). Each increment writes its own operation id
into the counter, so an attempt whose answer was lost (connection broken,
5xx) is settled by reading the counter back rather than guessed: the
request is retried under the same id until it is either acknowledged or
found applied. A create whose answer was lost is retried under the same
name; a 409 AlreadyExists then means the lost attempt went through. A
watch on the namespace records every event, resuming from its last
``resourceVersion`` when its stream ends.

The checker asserts: every acknowledged create exists and nothing else
does; each name was ADDED once; the counter equals the increments
acknowledged (directly or on read-back) and its operation ids are exactly
those; the watch saw every change once, in increasing ``resourceVersion``
order (the counter's values 0, 1, 2, ... each once); a 410 Gone on the
watch fails it. The longest gap between acknowledged writes is printed as a
``FIGURE`` line, never asserted: the machine may be loaded.

``corral up`` supervises its children and restarts a killed one after
about half a second, as systemd would; the fault is the kill and the
cluster's answer to it, the restart included.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from corral.api.errors import ApiError
from corral.backoff import Backoff
from corral.client import kubeconfig
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client, ConnectionFailed
from corralctl.masters import find_haproxy
from corralctl.processes import ProcessError, find_etcd, free_port, http_ok
from tests.e2e.ha_clockjump import command_line, faked_copy, flag, leads, set_offset, with_flag
from tests.e2e.ha_diskfull import data_on_tmpfs, fill, free
from tests.e2e.ha_partition import Master, partitioned
from tests.integration.test_crud import NAMESPACES, rt
from tests.integration.test_up import running, sweep

CONFIGMAPS = rt("configmaps")
LEASES = rt("leases")
NAMESPACE = "faults"
COUNTER = "counter"
CREATORS = 3
INCREMENTERS = 2
LOAD_BEFORE_FAULT = 5.0
LOAD_AFTER_FAULT = 10.0
UP_TIMEOUT = 240.0
REQUEST_TIMEOUT = 10.0
# A watch hears from its server at least every bookmark interval (60 s) on
# an idle namespace; under load, silence this long means a dead stream.
WATCH_IDLE_TIMEOUT = 20.0
# A frozen API server stays stopped past the watch idle timeout above, so
# watches on it must notice the silence and resume elsewhere.
FREEZE = WATCH_IDLE_TIMEOUT + 5.0
# How long a master stays cut off, and how long its API server may take to
# say it is not ready (etcd's request timeout, then the balancer's two checks).
PARTITION = 15.0
UNREADY_WITHIN = 12.0
READY_AGAIN_WITHIN = 30.0
# A member's disk stays full this long (it fails meanwhile), and may take
# this long to serve again once freed: the supervisor's restart backoff has
# grown while the member kept failing on a full disk.
DISK_FULL = 10.0
BACK_WITHIN = 90.0
# The clock fault: a faked copy's wall clock moves by JUMP for JUMPED
# seconds and back, once while it stands by and once while it leads.
JUMP = 3600
BEFORE_JUMP, JUMPED, AFTER_JUMP = 2.0, 8.0, 4.0
HANDOVER_WITHIN = 30.0
HANDOVERS = 4
# After the load stops: how long an operation may take to settle, and the
# watch to catch up with the last write.
SETTLE_TIMEOUT = 60.0
# Answers that say nothing about whether a write happened, or that it did not yet.
RETRYABLE = {429, 500, 502, 503, 504}


# --- the cluster ---------------------------------------------------------------------------


@dataclass
class Cluster:
    data_dir: Path
    up: subprocess.Popen[str]
    output: list[str]

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.data_dir / "up.json").read_text())
        return state

    def config(self) -> ClientConfig:
        # Only the balancer: the load tests what kubectl would see.
        loaded = kubeconfig.load(str(self.data_dir / "kubeconfig"))
        return ClientConfig(
            server=loaded.server,
            namespace=NAMESPACE,
            ca_data=loaded.ca_data,
            client_cert_data=loaded.client_cert_data,
            client_key_data=loaded.client_key_data,
        )


def _read_output(up: subprocess.Popen[str], lines: list[str], ready: threading.Event) -> None:
    assert up.stdout is not None
    # running() closes the pipe once corral up has stopped: the end of the output.
    with contextlib.suppress(ValueError, OSError):
        for line in up.stdout:
            lines.append(line)
            if "corral is up" in line:
                ready.set()
    ready.set()  # it exited: whoever waits looks at why


def _needs_tools() -> None:
    try:
        find_etcd()
        find_haproxy()
    except ProcessError as error:
        # ./dev deps installs both: a machine without them is a gap, not a pass.
        pytest.fail(str(error))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """``corral up --masters 3``, stopped and swept by ``corral down`` however the test ends."""
    _needs_tools()
    data = tmp_path / "data"
    argv = ["--data-dir", str(data), "--port", str(free_port()), "--masters", "3"]
    argv += ["--pod-network", "none", "--no-agent"]
    try:
        with running(argv) as up:
            lines: list[str] = []
            ready = threading.Event()
            reader = threading.Thread(target=_read_output, args=(up, lines, ready), daemon=True)
            reader.start()
            ready.wait(UP_TIMEOUT)
            assert up.poll() is None and any("corral is up" in line for line in lines), "".join(
                lines
            )
            yield Cluster(data, up, lines)
    finally:
        # Every child carries corral up's marker: whatever outlived it (a member
        # restarted at the wrong moment, haproxy) is found and stopped here.
        sweep(data)


def _pid_listening(argv_has: Callable[[list[str]], bool]) -> int:
    """The pid of the one process whose command line ``argv_has`` accepts."""
    found = _pids(argv_has)
    assert len(found) == 1, f"expected one process, found {found}"
    return found[0]


def _pids(argv_has: Callable[[list[str]], bool]) -> list[int]:
    """The pids of the processes whose command lines ``argv_has`` accepts."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv_has(argv):
            found.append(int(entry.name))
    return found


def _etcd_status(endpoint: str) -> dict[str, Any]:
    # etcd's HTTP gateway to its Maintenance.Status call; ids come as decimal strings.
    request = urllib.request.Request(f"{endpoint}/v3/maintenance/status", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        status: dict[str, Any] = json.loads(response.read())
    return status


def etcd_leader(cluster: Cluster) -> str:
    """The client URL of the member that leads now."""
    for endpoint in cluster.state["masters"]["etcd"]:
        with contextlib.suppress(OSError):
            status = _etcd_status(endpoint)
            if status["header"]["member_id"] == status["leader"]:
                return str(endpoint)
    raise AssertionError("no etcd member says it leads")


def member_pid(cluster: Cluster, index: int) -> int:
    """The pid of master ``index``'s etcd member, found by its data dir."""
    data = str(cluster.data_dir / f"etcd-{index}")
    return _pid_listening(
        lambda argv: "--listen-client-urls" in argv and flag(argv, "--data-dir") == data
    )


def kill_etcd_leader(cluster: Cluster) -> str:
    endpoint = etcd_leader(cluster)
    pid = member_pid(cluster, cluster.state["masters"]["etcd"].index(endpoint))
    os.kill(pid, signal.SIGKILL)
    return f"SIGKILL of the etcd leader {endpoint} (pid {pid})"


def apiserver_pid(cluster: Cluster, index: int) -> tuple[str, int]:
    """Master ``index``'s API server: its URL and pid."""
    url: str = cluster.state["masters"]["apiservers"][index]
    port = url.rsplit(":", 1)[1]
    pid = _pid_listening(
        lambda argv: (
            "apiserver" in argv and "--port" in argv and argv[argv.index("--port") + 1] == port
        )
    )
    return url, pid


def kill_apiserver(cluster: Cluster) -> str:
    url, pid = apiserver_pid(cluster, 0)
    os.kill(pid, signal.SIGKILL)
    return f"SIGKILL of the API server {url} (pid {pid})"


async def freeze_apiserver(cluster: Cluster) -> str:
    """SIGSTOP master 0's API server past the watch timeouts, then SIGCONT."""
    url, pid = apiserver_pid(cluster, 0)
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(FREEZE)
    finally:
        os.kill(pid, signal.SIGCONT)
    return f"SIGSTOP of the API server {url} (pid {pid}) for {FREEZE:.0f} s, then SIGCONT"


def master(cluster: Cluster, index: int) -> Master:
    """Master ``index``'s host and the pids of its etcd member and API server."""
    host = cluster.state["masters"]["hosts"][index]
    _, api = apiserver_pid(cluster, index)
    return Master(host["netns"], host["ip"], (member_pid(cluster, index), api))


def _balancer_log(cluster: Cluster) -> Path:
    return cluster.data_dir / "logs" / "haproxy.log"


def balancer_says(cluster: Cluster, since: int, server: str, state: str) -> Callable[[], bool]:
    """Whether HAProxy has logged ``server`` (apiserver1..) going ``state`` (UP, DOWN) since."""

    def said() -> bool:
        with _balancer_log(cluster).open("rb") as text:
            text.seek(since)
            return f"apiservers/{server} is {state}".encode() in text.read()

    return said


async def _ready(cluster: Cluster, url: str) -> bool:
    ca = cluster.data_dir / "pki" / "ca.crt"
    return await asyncio.to_thread(http_ok, f"{url}/readyz", 2.0, ca_file=ca)


async def _until_ready(cluster: Cluster, url: str, ready: bool, within: float) -> float | None:
    """Seconds until ``url``'s /readyz says ``ready``, or None if it did not within ``within``."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await _ready(cluster, url) == ready:
            return time.monotonic() - start
        await asyncio.sleep(0.2)
    return None


def partition(which: str) -> Fault:
    """Cut off the etcd leader's master, or a follower's, for PARTITION seconds, then heal."""

    async def inject(cluster: Cluster) -> str:
        endpoints = cluster.state["masters"]["etcd"]
        leader = endpoints.index(etcd_leader(cluster))
        # The follower is the first one: master 0's member, when it follows, was
        # every API server's first endpoint before each got its own first.
        index = leader if which == "leader" else min(set(range(len(endpoints))) - {leader})
        url = cluster.state["masters"]["apiservers"][index]
        server = f"apiserver{index + 1}"
        since = _balancer_log(cluster).stat().st_size
        start = time.monotonic()
        with partitioned(master(cluster, index)):
            unready = await _until_ready(cluster, url, False, UNREADY_WITHIN)
            down = await _until(balancer_says(cluster, since, server, "DOWN"), UNREADY_WITHIN)
            await asyncio.sleep(max(0.0, PARTITION - (time.monotonic() - start)))
        healed = _balancer_log(cluster).stat().st_size
        ready = await _until_ready(cluster, url, True, READY_AGAIN_WITHIN)
        up = await _until(balancer_says(cluster, healed, server, "UP"), READY_AGAIN_WITHIN)
        # Cut off, it must not answer through its relay, and the balancer must stop
        # sending it requests that can only fail.
        assert unready is not None, f"{url} stayed ready for {UNREADY_WITHIN} s, cut off"
        assert down is not None, f"the balancer kept {server} up for {UNREADY_WITHIN} s, cut off"
        assert ready is not None, f"{url} was not ready {READY_AGAIN_WITHIN} s after healing"
        assert up is not None, f"the balancer did not take {server} back after healing"
        print(f"FIGURE partition-{which} unready_after_s={unready:.2f} ready_again_s={ready:.2f}")
        return (
            f"master {index} (etcd {which} {endpoints[index]}, API server {url}) "
            f"cut off for {PARTITION:.0f} s, then healed"
        )

    return inject


async def _until(check: Callable[[], bool], within: float) -> float | None:
    """Seconds until ``check()`` holds, polling; None if it did not within ``within``."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await asyncio.to_thread(check):
            return time.monotonic() - start
        await asyncio.sleep(0.2)
    return None


def _answers(endpoint: str) -> bool:
    try:
        _etcd_status(endpoint)
    except OSError:
        return False
    return True


def _revisions(cluster: Cluster) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for endpoint in cluster.state["masters"]["etcd"]:
        try:
            found[endpoint] = int(_etcd_status(endpoint)["header"]["revision"])
        except OSError:
            found[endpoint] = None
    return found


async def members_agree(cluster: Cluster) -> None:
    """Every etcd member answers, at the same revision (the load has stopped): it caught up."""
    seen: dict[str, int | None] = {}

    def agree() -> bool:
        seen.update(_revisions(cluster))
        return None not in seen.values() and len(set(seen.values())) == 1

    if await _until(agree, SETTLE_TIMEOUT) is None:
        endpoints = cluster.state["masters"]["etcd"]
        silent = [endpoints.index(e) for e, revision in seen.items() if revision is None]
        tails = {i: _tail(cluster.data_dir / "logs" / f"etcd-{i}.log") for i in silent}
        pytest.fail(f"members disagree: {seen}; silent members' logs: {tails}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return str(error)


def disk_full(index: int, data: Path) -> Fault:
    """Fill the tmpfs under member ``index``'s data for DISK_FULL seconds, then free it."""

    async def inject(cluster: Cluster) -> str:
        endpoint = cluster.state["masters"]["etcd"][index]
        log = cluster.data_dir / "logs" / f"etcd-{index}.log"
        offset = log.stat().st_size

        def says_full() -> bool:
            with log.open("rb") as text:
                text.seek(offset)
                return b"no space left on device" in text.read()

        try:
            filled = await asyncio.to_thread(fill, data)
            full_after = await _until(says_full, DISK_FULL)
            await asyncio.sleep(max(0.0, DISK_FULL - (full_after or DISK_FULL)))
            alive_when_full = await asyncio.to_thread(_answers, endpoint)
        finally:
            free(data)
        back = await _until(lambda: _answers(endpoint), BACK_WITHIN)
        # No steering around: the member really ran out of space under the load.
        assert full_after is not None, f"etcd-{index} never hit ENOSPC ({filled} bytes filled)"
        assert back is not None, f"etcd-{index} did not serve {BACK_WITHIN} s after freeing"
        print(
            f"FIGURE etcd-disk-full ENOSPC_after_s={full_after:.2f} "
            f"member_answering_while_full={alive_when_full} serving_again_after_s={back:.2f}"
        )
        return f"disk full under etcd member {index} ({endpoint}) for {DISK_FULL:.0f} s, then freed"

    return inject


# --- the clock jump ------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """A leader-elected component corral up runs once: how to find it, and its Lease."""

    name: str
    module: str
    lease: str

    def is_copy(self, data_dir: Path) -> Callable[[list[str]], bool]:
        """Whether ``argv`` runs this component for our cluster (others here run theirs)."""
        return lambda argv: (
            argv[1:3] == ["-m", self.module]
            and (self.module == self.name or argv[3:4] == [self.name])
            and any(arg.startswith(f"{data_dir}/") for arg in argv)
        )

    def is_corral_copy(self, data_dir: Path, metrics: str) -> Callable[[list[str]], bool]:
        """Whether ``argv`` runs corral up's copy (the one serving metrics on ``metrics``)."""
        return lambda argv: (
            self.is_copy(data_dir)(argv)
            and "--metrics-bind-address" in argv
            and flag(argv, "--metrics-bind-address") == metrics
        )


COMPONENTS = {
    "controller-manager": Component(
        "controller-manager", "controlplane", "corral-controller-manager"
    ),
    "scheduler": Component("scheduler", "scheduler", "corral-scheduler"),
}


@dataclass
class Election:
    """What the clock fault saw: who believed it led, sampled, and the Lease's holders."""

    samples: list[tuple[float, dict[str, bool | None]]] = field(default_factory=list)
    holders: list[tuple[float, str]] = field(default_factory=list)
    # (start, end, the pid that should lead throughout, the other copy's name)
    phases: list[tuple[float, float, int, str]] = field(default_factory=list)


async def _sample(
    urls: dict[str, str], lease: str, ca: Path, election: Election, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        seen = {name: await asyncio.to_thread(leads, url, lease, ca) for name, url in urls.items()}
        election.samples.append((time.monotonic(), seen))
        await asyncio.sleep(0.2)


async def _watch_lease(client: Client, lease: str, election: Election) -> None:
    """Every holder the Lease names, from a watch (resumed from its last version)."""
    listed = await client.list(LEASES, "kube-system")
    version = listed["metadata"]["resourceVersion"]
    for item in listed["items"]:
        if item["metadata"]["name"] == lease:
            election.holders.append((time.monotonic(), item["spec"].get("holderIdentity") or ""))
    backoff = Backoff(0.05, 1.0)
    while True:
        try:
            async for event in client.watch(
                LEASES, "kube-system", resource_version=version, allow_bookmarks=True
            ):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK" and obj["metadata"]["name"] == lease:
                    holder = (obj.get("spec") or {}).get("holderIdentity") or ""
                    election.holders.append((time.monotonic(), holder))
        except Exception as error:
            if _retryable(error) is None:
                raise
        await asyncio.sleep(backoff.next())


async def _jump_phase(clock: Path, leader: int, other: str, election: Election) -> None:
    """Jump the faked copy's wall clock JUMP ahead and back; the leader must hold throughout."""
    start = time.monotonic()
    await asyncio.sleep(BEFORE_JUMP)
    set_offset(clock, JUMP)
    await asyncio.sleep(JUMPED)
    set_offset(clock, 0)
    await asyncio.sleep(AFTER_JUMP)
    election.phases.append((start, time.monotonic(), leader, other))


async def _holder(election: Election, pid: int, within: float) -> bool:
    """Whether the Lease names ``pid``'s process (identity ``host_pid``) within ``within``."""
    return (
        await _until(
            lambda: bool(election.holders) and election.holders[-1][1].endswith(f"_{pid}"), within
        )
        is not None
    )


async def _hand_over(
    cluster: Cluster, component: Component, metrics: str, faked: int, election: Election
) -> int:
    """SIGTERM corral's copy (it hands the Lease back) until the faked copy takes it."""
    corral_copy = component.is_corral_copy(cluster.data_dir, metrics)
    for _ in range(HANDOVERS):
        found = await _until(lambda: len(_pids(corral_copy)) == 1, 30.0)
        assert found is not None, f"corral up did not restart its {component.name}"
        (pid,) = _pids(corral_copy)
        os.kill(pid, signal.SIGTERM)

        def taken_over(stopped: int = pid) -> bool:
            holder = election.holders[-1][1] if election.holders else ""
            return holder != "" and not holder.endswith(f"_{stopped}")

        taken = await _until(taken_over, HANDOVER_WITHIN)
        assert taken is not None, f"nobody took the Lease {component.lease} over"
        if election.holders[-1][1].endswith(f"_{faked}"):
            return pid
    raise AssertionError(f"the faked copy never won the Lease in {HANDOVERS} handovers")


def clock_jump(component: Component, scratch: Path, election: Election) -> Fault:
    """A faked copy of ``component`` stands by, then leads, while its wall clock jumps."""

    async def inject(cluster: Cluster) -> str:
        corral_pid = _pid_listening(component.is_copy(cluster.data_dir))
        argv = command_line(corral_pid)
        metrics = flag(argv, "--metrics-bind-address")
        own = f"127.0.0.1:{free_port()}"
        ca = cluster.data_dir / "pki" / "ca.crt"
        urls = {"corral": f"https://{metrics}/metrics", "faked": f"https://{own}/metrics"}
        clock, log = scratch / "faketime", scratch / f"{component.name}-faked.log"
        client = Client(cluster.config(), timeout=REQUEST_TIMEOUT)
        stop = asyncio.Event()
        with faked_copy(with_flag(argv, "--metrics-bind-address", own), clock, log) as faked:
            tasks = [
                asyncio.create_task(_sample(urls, component.lease, ca, election, stop)),
                asyncio.create_task(_watch_lease(client, component.lease, election)),
            ]
            try:
                standing_by = await _until(
                    lambda: leads(urls["faked"], component.lease, ca) is False, 30.0
                )
                assert standing_by is not None, f"the faked copy did not start: {log}"
                assert await _holder(election, corral_pid, 10.0), election.holders[-3:]
                await _jump_phase(clock, corral_pid, "faked", election)
                await _hand_over(cluster, component, metrics, faked.pid, election)
                await _jump_phase(clock, faked.pid, "corral", election)
            finally:
                stop.set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await client.close()
        return (
            f"the wall clock of a second {component.name} (pid {faked.pid}) moved {JUMP:+d} s "
            "and back, while standing by and while leading"
        )

    return inject


def check_election(election: Election) -> None:
    """Never two leaders at once; through each clock jump, the leader kept the Lease."""
    both = [t for t, seen in election.samples if sum(1 for v in seen.values() if v) > 1]
    assert not both, f"two copies believed they led at {len(both)} samples"
    assert len(election.phases) == 2, "the clock fault did not run both phases"
    for start, end, leader, other in election.phases:
        during = [holder for t, holder in election.holders if start <= t <= end]
        assert during, "the Lease watch heard no renewal during a jump"
        assert all(h.endswith(f"_{leader}") for h in during), f"the Lease moved: {set(during)}"
        sampled = [seen for t, seen in election.samples if start <= t <= end]
        assert sampled, "no leader status sampled during a jump"
        assert not any(seen[other] for seen in sampled), f"the {other} copy believed it led"


# --- the load ------------------------------------------------------------------------------


@dataclass
class History:
    """What the load was told: acknowledged, and settled on read-back after a lost answer."""

    acked_creates: set[str] = field(default_factory=set)
    confirmed_creates: set[str] = field(default_factory=set)
    acked_increments: set[str] = field(default_factory=set)
    confirmed_increments: set[str] = field(default_factory=set)
    ack_times: list[float] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)

    def ack(self) -> None:
        self.ack_times.append(time.monotonic())


def _retryable(error: BaseException) -> str | None:
    """Why ``error`` leaves a write's outcome open (retry it), or None if it is an answer."""
    if isinstance(error, ConnectionFailed | aiohttp.ClientError | TimeoutError):
        return type(error).__name__
    if isinstance(error, ApiError) and error.code in RETRYABLE:
        return str(error.code)
    return None


async def _create_one(client: Client, name: str, history: History, stop_by: float) -> None:
    backoff = Backoff(0.05, 1.0)
    retried = False
    while time.monotonic() < stop_by:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        try:
            await client.create(CONFIGMAPS, body, NAMESPACE)
        except Exception as error:
            if isinstance(error, ApiError) and error.code == 409 and retried:
                history.confirmed_creates.add(name)  # the lost attempt went through
                return
            why = _retryable(error)
            if why is None:
                raise
            history.retries[f"create {why}"] += 1
            retried = True
            await asyncio.sleep(backoff.next())
            continue
        history.acked_creates.add(name)
        history.ack()
        return
    raise AssertionError(f"create {name} not settled in time")


async def _increment_one(client: Client, op: str, history: History, stop_by: float) -> None:
    backoff = Backoff(0.05, 1.0)
    while time.monotonic() < stop_by:
        try:
            counter = await client.get(CONFIGMAPS, COUNTER, NAMESPACE)
            data = counter.setdefault("data", {})
            if op in data:
                history.confirmed_increments.add(op)  # a lost answer, but applied
                return
            data["n"] = str(int(data["n"]) + 1)
            data[op] = "1"
            await client.replace(CONFIGMAPS, counter, NAMESPACE)
        except Exception as error:
            if isinstance(error, ApiError) and error.code == 409:
                history.retries["increment conflict"] += 1
                continue  # someone else's increment came first: read again
            why = _retryable(error)
            if why is None:
                raise
            history.retries[f"increment {why}"] += 1
            await asyncio.sleep(backoff.next())
            continue
        history.acked_increments.add(op)
        history.ack()
        return
    raise AssertionError(f"increment {op} not settled in time")


One = Callable[[Client, str, History, float], Awaitable[None]]


async def keep_writing(
    one: One, prefix: str, client: Client, index: int, history: History, stop: asyncio.Event
) -> None:
    """``one`` write after another, each under a new id, until ``stop``."""
    sequence = 0
    while not stop.is_set():
        # An operation under way when the load stops still settles.
        await one(
            client, f"{prefix}-{index}-{sequence}", history, time.monotonic() + SETTLE_TIMEOUT
        )
        sequence += 1


# --- the watch -----------------------------------------------------------------------------


@dataclass
class WatchLog:
    events: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)
    last_version: int = 0
    resumes: int = 0
    gone: list[str] = field(default_factory=list)
    progress: asyncio.Event = field(default_factory=asyncio.Event)


async def watcher(client: Client, since: int, log: WatchLog, stop: asyncio.Event) -> None:
    """Every event in the namespace from ``since`` on, resumed from the last version seen."""
    log.last_version = since
    backoff = Backoff(0.05, 1.0)
    while not stop.is_set():
        try:
            async for event in client.watch(
                CONFIGMAPS, NAMESPACE, resource_version=str(log.last_version), allow_bookmarks=True
            ):
                backoff.reset()
                obj = event["object"]
                version = int(obj["metadata"]["resourceVersion"])
                if event["type"] != "BOOKMARK":
                    name = obj["metadata"]["name"]
                    log.events.append((event["type"], name, version, obj.get("data") or {}))
                log.last_version = max(log.last_version, version)
                log.progress.set()
        except Exception as error:
            if isinstance(error, ApiError) and error.code == 410:
                # Compacted past our version: the checker cannot vouch for the gap.
                log.gone.append(str(error))
                return
            if _retryable(error) is None:
                raise
        log.resumes += 1
        await asyncio.sleep(backoff.next())


# --- the run and the checker ---------------------------------------------------------------


async def _prepare(client: Client) -> int:
    await client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
    body = {"metadata": {"name": COUNTER}, "data": {"n": "0"}}
    await client.create(CONFIGMAPS, body, NAMESPACE)
    # The watch starts before the counter existed, so it sees its ADDED too.
    listed = await client.list(CONFIGMAPS, NAMESPACE)
    counter = next(o for o in listed["items"] if o["metadata"]["name"] == COUNTER)
    return int(counter["metadata"]["resourceVersion"]) - 1


Fault = Callable[[Cluster], Awaitable[str]]
"""Injects a fault, holds it, heals it if it heals, and says what it did."""


def instant(fault: Callable[[Cluster], str]) -> Fault:
    """A fault that is over once injected (a kill: the supervisor's restart is the answer)."""

    async def inject(cluster: Cluster) -> str:
        return fault(cluster)

    return inject


async def run_under_load(
    cluster: Cluster, fault: Fault, label: str, *, watch_direct: str | None = None
) -> None:
    """The load and the watch around ``fault``, then the checker.

    ``watch_direct`` names an API server to hold a second watch on, past the
    balancer, so the checker sees what that server's own watches delivered.
    """
    config = cluster.config()
    direct = dataclasses.replace(config, server=watch_direct or config.server)
    clients = [
        Client(config, timeout=REQUEST_TIMEOUT, watch_idle_timeout=WATCH_IDLE_TIMEOUT)
        for _ in range(CREATORS + INCREMENTERS + 2)
    ]
    clients.append(Client(direct, timeout=REQUEST_TIMEOUT, watch_idle_timeout=WATCH_IDLE_TIMEOUT))
    history, stop, watch_stop = History(), asyncio.Event(), asyncio.Event()
    logs = [WatchLog()] + ([WatchLog()] if watch_direct else [])
    try:
        since = await _prepare(clients[0])
        watches = [
            asyncio.create_task(watcher(client, since, log, watch_stop))
            for client, log in zip((clients[-2], clients[-1]), logs, strict=False)
        ]
        kinds = [(_create_one, "cm")] * CREATORS + [(_increment_one, "op")] * INCREMENTERS
        workers = [
            asyncio.create_task(keep_writing(one, prefix, clients[i], i, history, stop))
            for i, (one, prefix) in enumerate(kinds)
        ]
        await asyncio.sleep(LOAD_BEFORE_FAULT)
        fault_at = time.monotonic()
        what = await fault(cluster)
        healed_at = time.monotonic()
        print(f"\nfault: {what}")
        await asyncio.sleep(LOAD_AFTER_FAULT)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), SETTLE_TIMEOUT + REQUEST_TIMEOUT)
        final = await _final_state(clients[0])
        for log, watch in zip(logs, watches, strict=True):
            await _caught_up(log, final, watch)
        watch_stop.set()
        for watch in watches:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        _figures(label, history, logs, fault_at, healed_at)
        for log in logs:
            check(history, log, final)
    finally:
        for client in clients:
            await client.close()


async def _final_state(client: Client) -> dict[str, Any]:
    backoff = Backoff(0.05, 1.0)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            listed: dict[str, Any] = await client.list(CONFIGMAPS, NAMESPACE)
            return listed
        except Exception as error:
            if _retryable(error) is None or time.monotonic() > deadline:
                raise
            await asyncio.sleep(backoff.next())


async def _caught_up(log: WatchLog, final: dict[str, Any], watch: asyncio.Task[None]) -> None:
    """Wait (bounded) until the watch has seen the last write, or ended with a 410."""
    newest = max(int(o["metadata"]["resourceVersion"]) for o in final["items"])
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while log.last_version < newest and not watch.done() and time.monotonic() < deadline:
        log.progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(log.progress.wait(), 0.5)
    await asyncio.sleep(1.0)  # room for a late duplicate to show


def _longest_gap(times: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest time without an acknowledged write in [start, end], and when it began."""
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return max((b - a, a) for a, b in itertools.pairwise(points))


def _figures(
    label: str, history: History, logs: list[WatchLog], fault_at: float, healed_at: float
) -> None:
    times = history.ack_times
    before, _ = _longest_gap(times, fault_at - LOAD_BEFORE_FAULT + 1.0, fault_at)
    around, began = _longest_gap(times, fault_at - 1.0, healed_at + LOAD_AFTER_FAULT)
    writes = len(history.acked_creates) + len(history.acked_increments)
    print(
        f"FIGURE {label} longest_write_gap_s={around:.2f} (baseline before the fault: {before:.2f})"
        f" began {began - fault_at:.2f} s after the fault, which was over after "
        f"{healed_at - fault_at:.2f} s"
    )
    print(
        f"FIGURE {label} acked_writes={writes} creates={len(history.acked_creates)} "
        f"(+{len(history.confirmed_creates)} settled on read-back) "
        f"increments={len(history.acked_increments)} "
        f"(+{len(history.confirmed_increments)} settled on read-back)"
    )
    resumes = [log.resumes for log in logs]
    print(f"FIGURE {label} retries={dict(history.retries)} watch_resumes={resumes}")


def check(history: History, log: WatchLog, final: dict[str, Any]) -> None:
    assert not log.gone, f"the watch got 410 Gone: {log.gone}"
    objects = {o["metadata"]["name"]: o for o in final["items"]}
    created = history.acked_creates | history.confirmed_creates
    made = {name for name in objects if name.startswith("cm-")}
    assert not history.acked_creates - made, f"lost creates: {history.acked_creates - made}"
    assert made == created, f"objects nobody was told of: {made - created}"
    # Every change once, in order: versions strictly increase across the namespace.
    versions = [version for _, _, version, _ in log.events]
    assert versions == sorted(set(versions)), "watch events out of order or repeated"
    added = Counter(name for kind, name, _, _ in log.events if kind == "ADDED")
    twice = {name for name, count in added.items() if count > 1}
    assert not twice, f"ADDED more than once: {twice}"
    assert set(added) >= created | {COUNTER}, f"creates the watch missed: {created - set(added)}"
    counter = objects[COUNTER]["data"]
    ops = {key for key in counter if key.startswith("op-")}
    increments = history.acked_increments | history.confirmed_increments
    assert not history.acked_increments - ops, "an acknowledged increment was lost"
    assert ops == increments, f"increments nobody was told of: {ops - increments}"
    assert int(counter["n"]) == len(increments), f"lost update: n={counter['n']}, {len(increments)}"
    values = [int(data["n"]) for _, name, _, data in log.events if name == COUNTER]
    assert values == list(range(len(increments) + 1)), (
        "the watch missed or repeated a counter value"
    )
    assert all(kind != "DELETED" for kind, _, _, _ in log.events)


async def test_each_master_runs_on_a_host_of_its_own_that_a_partition_cuts_off(
    cluster: Cluster,
) -> None:
    masters = cluster.state["masters"]
    hosts, endpoints, urls = masters["hosts"], masters["etcd"], masters["apiservers"]
    ours = os.stat("/proc/self/ns/net").st_ino
    assert len({host["netns"] for host in hosts}) == len(hosts) == 3
    for index, host in enumerate(hosts):
        theirs = os.stat(f"/run/netns/{host['netns']}").st_ino
        assert theirs != ours, f"{host['netns']} is this namespace"
        for pid in master(cluster, index).pids:
            assert os.stat(f"/proc/{pid}/ns/net").st_ino == theirs, f"pid {pid} not on its host"
    index = 1
    # HAProxy starts with the masters and takes each in after two checks: only
    # one it has taken in can be seen going down.
    taken_in = await _until(balancer_says(cluster, 0, "apiserver2", "UP"), READY_AGAIN_WITHIN)
    assert taken_in is not None, "the balancer never took master 1's API server in"
    since = _balancer_log(cluster).stat().st_size
    with partitioned(master(cluster, index)):
        down = await _until(balancer_says(cluster, since, "apiserver2", "DOWN"), UNREADY_WITHIN)
        # Through the relays, as from anywhere outside its host: no answer.
        member_answers = await asyncio.to_thread(_answers, endpoints[index])
        api_answers = await _ready(cluster, urls[index])
        others = [await asyncio.to_thread(_answers, e) for e in endpoints if e != endpoints[index]]
        balanced = await _ready(cluster, cluster.config().server)
    healed = _balancer_log(cluster).stat().st_size
    up = await _until(balancer_says(cluster, healed, "apiserver2", "UP"), READY_AGAIN_WITHIN)
    back = await _until(lambda: _answers(endpoints[index]), READY_AGAIN_WITHIN)
    assert down is not None, "the balancer kept the cut-off API server"
    assert not member_answers and not api_answers, "the cut-off master still answered"
    assert all(others), "a master on the other side stopped answering"
    assert balanced, "the balancer did not serve from the other two masters"
    assert up is not None and back is not None, "the master did not come back after healing"


async def test_sigkill_of_the_etcd_leader_loses_nothing(cluster: Cluster) -> None:
    before = etcd_leader(cluster)
    await run_under_load(cluster, instant(kill_etcd_leader), "etcd-leader-sigkill")
    print(f"FIGURE etcd-leader-sigkill leader before: {before}, after: {etcd_leader(cluster)}")


async def test_sigkill_of_an_api_server_loses_nothing(cluster: Cluster) -> None:
    await run_under_load(cluster, instant(kill_apiserver), "apiserver-sigkill")


async def test_a_frozen_api_server_loses_and_repeats_nothing(cluster: Cluster) -> None:
    # A second watch goes to the frozen server itself: it must resume past the
    # silence and, once the server runs again, deliver no duplicate and no gap.
    frozen = cluster.state["masters"]["apiservers"][0]
    await run_under_load(cluster, freeze_apiserver, "apiserver-sigstop", watch_direct=frozen)


@pytest.mark.parametrize("which", ["follower", "leader"])
async def test_a_partitioned_master_loses_nothing(cluster: Cluster, which: str) -> None:
    await run_under_load(cluster, partition(which), f"partition-{which}")
    await members_agree(cluster)


async def test_a_full_disk_on_an_etcd_member_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    endpoints = cluster.state["masters"]["etcd"]
    index = (endpoints.index(etcd_leader(cluster)) + 1) % len(endpoints)  # a follower
    data = cluster.data_dir / f"etcd-{index}"
    with data_on_tmpfs(data, master(cluster, index).pids[0], tmp_path / "etcd-copy"):
        # The supervisor restarts the member on the tmpfs.
        assert await _until(lambda: _answers(endpoints[index]), BACK_WITHIN) is not None
        await run_under_load(cluster, disk_full(index, data), "etcd-disk-full")
        await members_agree(cluster)


@pytest.mark.parametrize("component", ["controller-manager", "scheduler"])
async def test_a_clock_jump_does_not_elect_two_leaders(
    cluster: Cluster, tmp_path: Path, component: str
) -> None:
    election = Election()
    fault = clock_jump(COMPONENTS[component], tmp_path, election)
    await run_under_load(cluster, fault, f"clock-jump-{component}")
    holders = [h for h, _ in itertools.groupby(holder for _, holder in election.holders)]
    print(
        f"FIGURE clock-jump-{component} leader_samples={len(election.samples)} "
        f"lease_events={len(election.holders)} holders_in_turn={holders}"
    )
    check_election(election)
