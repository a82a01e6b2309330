"""Node agent benchmark: pod starts against Docker's floor and Docker Swarm, and memory.

Everything runs in one go on this machine, side by side: etcd, the API
server, the scheduler, the controller manager, a dockerd of its own and
four agents, all as real processes: one for the single-node figures and
three for the 100 replicas. The control plane runs as ``corral up`` runs
it (bench/securepath.py: TLS, RBAC, audit, one API worker per core), and
each agent joins as ``corral up``'s do, with the cluster CA and a
bootstrap token for its node certificate.

The dockerd runs inside a network namespace the bench makes (crl-pb-dk),
with Docker's usual bridge and iptables, so that Docker Swarm (the peer,
which ships with docker.io) can run there without touching this machine's
network. The agents use the pod network ``corral up`` uses by default,
``bridge``, each with its host side in a namespace of its own
(``--network-netns crl-pb-N``): every pod gets a veth, an address and a
route, as users' pods do.

What is measured, each from the create request to the last pod Running
(seen through a watch):

- one pod with ``nodeName`` set, ten times (p50): the per-pod path;
- 30 replicas of one ReplicationController on one node (a nodeSelector),
  through the scheduler and the controller manager;
- 100 replicas of one ReplicationController over the three agents, which
  share the one dockerd, so each has a third of the starts in flight that
  one agent has (``--parallel-starts 4``, against the floor's 10): three
  nodes would have three dockerds;
- Docker's floor: ``docker run -d`` of an infra container and an app
  container joined to it, 10 pods at a time, for 30 and 100 pods, with
  networking off (``none``) and on Docker's own bridge;
- Docker Swarm: ``docker service create --replicas 30`` of the same app
  image, to 30 tasks running;
- the resident memory of the agents and the API server with 100 pods.

    python bench/agent_bench.py [--skip-swarm] [--skip-hundred]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import docker.errors

from corral.api.resources import REGISTRY
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client
from corral.objects import Obj
from corralctl import cluster
from corralctl import dockerd as dockerd_process
from corralctl.dockerd import Dockerd
from corralctl.processes import Etcd, ManagedProcess, free_port, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.conftest import import_test_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from securepath import SecureApi, secure_api, start_component

PODS = REGISTRY.resolve("pods")
NAMESPACES = REGISTRY.resolve("namespaces")
RCS = REGISTRY.resolve("replicationcontrollers")
IMAGE = "corral-test/busybox:1"
PAUSE = "corral.local/pause:1"
DOCKER_NETNS = "crl-pb-dk"
AGENT_NETNS = "crl-pb-{}"
SOLO = "bench-solo"
THREE = [f"bench-node-{i}" for i in range(3)]
NODES = [SOLO, *THREE]
# The three agents share one dockerd: together, about as many starts in flight as the floor.
SHARED_PARALLEL_STARTS = 4
FLOOR_PARALLEL = 10
SWARM_SERVICE = "corral-bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# --- Docker's floor --------------------------------------------------------------------------


def docker_floor(daemon: Dockerd, count: int, parallel: int, network: str) -> float:
    """Seconds until ``count`` pods' two containers all run under ``docker run -d``.

    An infra container (on ``network``) plus an app container joined to it,
    ``parallel`` pods at a time, timed from the start of the batch as corral's
    pods are from their (simultaneous) creation.
    """
    client = daemon.client()
    batch_start = time.perf_counter()

    def one(index: int) -> float:
        infra = client.containers.run(
            PAUSE,
            ["/bin/sleep", "2147483647"],
            detach=True,
            network_mode=network,
            name=f"floor-pod-{index}",
        )
        client.containers.run(
            IMAGE,
            ["sleep", "100000"],
            detach=True,
            network_mode=f"container:{infra.id}",
            name=f"floor-app-{index}",
        )
        return time.perf_counter() - batch_start

    with ThreadPoolExecutor(parallel) as pool:
        durations = list(pool.map(one, range(count)))
    return max(durations)


def container_ids(daemon: Dockerd) -> list[str]:
    # The low-level list: the SDK's inspects each one, and fails on one just removed.
    return [str(c["Id"]) for c in daemon.client().api.containers(all=True)]


def remove_all(daemon: Dockerd) -> None:
    api = daemon.client().api

    def remove(container_id: str) -> None:
        try:
            api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass  # removed by its owner meanwhile

    with ThreadPoolExecutor(FLOOR_PARALLEL) as pool:
        list(pool.map(remove, container_ids(daemon)))


# --- Docker Swarm ------------------------------------------------------------------------------


def swarm(daemon: Dockerd, replicas: int) -> float:
    """Seconds from ``docker service create --replicas N`` until N tasks run."""
    env = {**os.environ, "DOCKER_HOST": daemon.host}

    def docker(*argv: str) -> str:
        done = subprocess.run(
            ["docker", *argv], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        return done.stdout

    # Loopback only: the swarm has one node, and its ports stay in the namespace.
    docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
    client = daemon.client()
    try:
        start = time.perf_counter()
        docker(
            "service", "create", "--detach", "--no-resolve-image",
            "--replicas", str(replicas), "--name", SWARM_SERVICE,
            IMAGE, "sleep", "100000",
        )  # fmt: skip

        def all_running() -> bool:
            tasks = client.api.tasks(filters={"service": SWARM_SERVICE})
            running = [t for t in tasks if (t.get("Status") or {}).get("State") == "running"]
            return len(running) >= replicas

        if not _wait_for(all_running, 300, 0.05):
            raise TimeoutError("swarm never ran every task")
        return time.perf_counter() - start
    finally:
        subprocess.run(["docker", "service", "rm", SWARM_SERVICE], env=env, capture_output=True)
        _wait_for(lambda: not container_ids(daemon), 120, 0.2)
        subprocess.run(["docker", "swarm", "leave", "--force"], env=env, capture_output=True)


# --- corral ------------------------------------------------------------------------------------


def _sleeper_spec() -> Obj:
    """The pod spec every bench pod runs: the test image asleep, gone at once when deleted."""
    return {
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "main",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sleep", "100000"],
            }
        ],
    }


def rc_body(name: str, replicas: int, group: str) -> Obj:
    labels = {"app": name}
    pod_spec = {**_sleeper_spec(), "nodeSelector": {"bench-group": group}}
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": labels,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def pod_body(name: str, node: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {**_sleeper_spec(), "nodeName": node},
    }


async def until_running(
    admin: ClientConfig,
    namespace: str,
    create: Obj,
    resource: object,
    count: int,
    half: list[float] | None = None,
) -> float:
    """Seconds from creating ``create`` until ``count`` pods of the namespace run.

    ``half`` gets the seconds until half of them ran: whether pods come up
    one after another or all together at the end.
    """
    assert PODS is not None and NAMESPACES is not None
    async with Client(dataclasses.replace(admin, namespace=namespace)) as client:
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        listed = await client.list(PODS, namespace)
        version = listed["metadata"]["resourceVersion"]
        running: set[str] = set()
        done = asyncio.Event()

        async def watch() -> None:
            async for event in client.watch(PODS, namespace, resource_version=version):
                obj = event["object"]
                if (obj.get("status") or {}).get("phase") == "Running":
                    running.add(obj["metadata"]["name"])
                    if half is not None and len(running) == (count + 1) // 2 and not half:
                        half.append(time.perf_counter() - start)
                    if len(running) >= count:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        start = time.perf_counter()
        await client.create(resource, create, namespace)  # type: ignore[arg-type]
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - start
        watcher.cancel()
        return elapsed


async def delete_namespace(admin: ClientConfig, namespace: str) -> None:
    assert NAMESPACES is not None
    async with Client(admin) as client:
        await client.delete(NAMESPACES, namespace)


def settle(admin: ClientConfig, namespace: str, daemon: Dockerd) -> None:
    """Delete what a measurement made and wait for its containers to go."""
    asyncio.run(delete_namespace(admin, namespace))
    if not _wait_for(lambda: not container_ids(daemon), 300, 0.5):
        raise TimeoutError(f"the pods of {namespace} were never removed")


def _tree(pid: int) -> list[int]:
    """A process and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants (an API server's workers)."""
    total = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants, and of the children they reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks


class CpuMeter:
    """CPU seconds each part spent during one measurement: where a 2-core machine's time goes."""

    def __init__(self, parts: dict[str, int]) -> None:
        self.parts = parts
        self.before = {name: tree_cpu_seconds(pid) for name, pid in parts.items()}

    def spent(self) -> dict[str, float]:
        return {
            name: round(tree_cpu_seconds(pid) - self.before[name], 1)
            for name, pid in self.parts.items()
        }


def netns(action: str, name: str) -> None:
    subprocess.run(["ip", "netns", action, name], capture_output=True, check=False)
    if action == "add":
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)


def agent_process(
    secure: SecureApi,
    token: str,
    daemon: Dockerd,
    scratch: Path,
    index: int,
    log_level: str,
    extra: list[str],
) -> ManagedProcess:
    """An agent as ``corral up`` starts one: the cluster CA, a bootstrap token to get its
    node certificate with, and its control stream to the API server's agent port."""
    node = NODES[index]
    return ManagedProcess(
        node,
        [
            sys.executable, "-m", "nodeagent",
            "--server", secure.api.url,
            "--ca-file", str(secure.pki.ca_cert),
            "--bootstrap-token", token,
            "--control", f"127.0.0.1:{secure.api.agent_port}",
            "--node-name", node,
            "--runtime", "docker",
            "--network", "bridge",
            "--network-netns", AGENT_NETNS.format(index),
            "--docker-host", daemon.host,
            "--data-dir", str(scratch / node),
            "--listen-port", str(free_port()),
            "--log-level", log_level,
            "--label", f"bench-group={'solo' if node == SOLO else 'three'}",
            *([] if node == SOLO else ["--parallel-starts", str(SHARED_PARALLEL_STARTS)]),
            *extra,
        ],
        scratch / f"{node}.log",
    )  # fmt: skip


def machine() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, {model}, {platform.release()}, load {load:.1f} at start"


class Results(dict[str, object]):
    """The figures, each printed as it is measured (a later failure keeps the earlier ones)."""

    def __setitem__(self, key: str, value: object) -> None:
        print(
            f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}", flush=True
        )
        super().__setitem__(key, value)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--skip-swarm", action="store_true")
    options.add_argument("--skip-hundred", action="store_true")
    options.add_argument("--single-runs", type=int, default=10)
    options.add_argument("--rounds", type=int, default=3, help="of the 30-replica figures")
    options.add_argument(
        "--agent-log-level",
        default="info",
        help="debug logs each pod's start, step by step, and each status report (a profile)",
    )
    options.add_argument(
        "--agent-args", default="", help="more flags for every agent, e.g. '--parallel-starts 4'"
    )
    options.add_argument("--keep-logs", action="store_true", help="keep the scratch directory")
    args = options.parse_args()
    assert RCS is not None
    scratch = Path(tempfile.mkdtemp(prefix="corral-agent-bench-"))
    namespaces = [DOCKER_NETNS, *(AGENT_NETNS.format(i) for i in range(len(NODES)))]
    netns("add", DOCKER_NETNS)
    daemon = dockerd_process.start(netns=DOCKER_NETNS)
    processes: list[ManagedProcess] = []
    failed = True
    etcd = Etcd(scratch / "etcd", log_path=scratch / "etcd.log")
    results = Results({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    results["machine"] = machine()
    try:
        import_test_image(daemon)
        etcd.start()
        etcd.wait_ready()
        secure = secure_api(scratch, etcd)
        api = secure.api
        api.start()
        processes.append(api)
        api.wait_ready()
        admin = secure.pki.admin_config(api.url)
        for name, argv in (
            ("scheduler", ["scheduler"]),
            ("controller-manager", ["controlplane", "controller-manager"]),
        ):
            processes.append(start_component(secure, name, argv, ("--log-level", "warning")))
        token = asyncio.run(cluster.create_join_token(admin, timedelta(hours=1)))
        agents = [
            agent_process(
                secure, token, daemon, scratch, i, args.agent_log_level, args.agent_args.split()
            )
            for i in range(len(NODES))
        ]
        for agent in agents:
            agent.start()
            processes.append(agent)
        wait_until(lambda: daemon.client().images.list(name=PAUSE) != [], 60, "pause image")

        floor_one = []
        for _ in range(args.single_runs):
            floor_one.append(docker_floor(daemon, 1, 1, "none"))
            remove_all(daemon)
        results["floor_one_none_p50_s"] = statistics.median(floor_one)
        single = []
        for i in range(args.single_runs):
            single.append(
                asyncio.run(until_running(admin, f"single-{i}", pod_body("p", SOLO), PODS, 1))
            )
        results["corral_one_p50_s"] = statistics.median(single)
        for i in range(args.single_runs):
            asyncio.run(delete_namespace(admin, f"single-{i}"))
        _wait_for(lambda: not container_ids(daemon), 120, 0.5)

        parts = {
            "agent": agents[0].pid or 0,
            "apiserver": api.pid or 0,
            "etcd": etcd.pid or 0,
            "scheduler": processes[1].pid or 0,
            "controller-manager": processes[2].pid or 0,
            "dockerd": daemon.process.pid if daemon.process is not None else 0,
        }
        dockerd_only = {"dockerd": parts["dockerd"]}
        # Round after round, side by side, so a neighbour's burst of load
        # touches all of them alike; the medians are reported.
        rounds: dict[str, list[float]] = {}
        cpu: dict[str, list[dict[str, float]]] = {}

        def measure(key: str, meter_parts: dict[str, int], run: Callable[[], float]) -> None:
            meter = CpuMeter(meter_parts)
            rounds.setdefault(key, []).append(run())
            cpu.setdefault(key, []).append(meter.spent())
            print(f"    {key}: {rounds[key][-1]:.2f}s, cpu {cpu[key][-1]}", flush=True)

        for index in range(args.rounds):
            measure(
                "floor_30_none_s",
                dockerd_only,
                lambda: docker_floor(daemon, 30, FLOOR_PARALLEL, "none"),
            )
            remove_all(daemon)  # after the meter: its CPU is the start's only
            measure(
                "floor_30_bridge_s",
                dockerd_only,
                lambda: docker_floor(daemon, 30, FLOOR_PARALLEL, "bridge"),
            )
            remove_all(daemon)
            namespace = f"thirty-{index}"
            half: list[float] = []
            thirty = functools.partial(
                until_running, admin, namespace, rc_body("thirty", 30, "solo"), RCS, 30, half
            )
            measure("corral_30_one_node_s", parts, lambda: asyncio.run(thirty()))  # noqa: B023
            rounds.setdefault("corral_30_half_running_s", []).extend(half)
            settle(admin, namespace, daemon)
            if not args.skip_swarm:
                measure("swarm_30_s", dockerd_only, lambda: swarm(daemon, 30))
        for key, values in rounds.items():
            middle = statistics.median_low(values)
            results[key] = middle
            results[f"{key}_rounds"] = [round(v, 2) for v in values]
            if key in cpu:
                results[f"cpu_{key}"] = cpu[key][values.index(middle)]
        if not args.skip_hundred:
            for network in ("none", "bridge"):
                meter = CpuMeter(dockerd_only)
                results[f"floor_100_{network}_s"] = docker_floor(
                    daemon, 100, FLOOR_PARALLEL, network
                )
                results[f"cpu_floor_100_{network}"] = meter.spent()
                remove_all(daemon)
            meter = CpuMeter(
                {
                    **{k: v for k, v in parts.items() if k != "agent"},
                    **{f"agent-{i}": a.pid or 0 for i, a in enumerate(agents[1:])},
                }
            )
            results["corral_100_three_nodes_s"] = asyncio.run(
                until_running(admin, "hundred", rc_body("hundred", 100, "three"), RCS, 100)
            )
            results["cpu_s_corral_100"] = meter.spent()
            time.sleep(2)  # the status writes and events after the last Running
            results["agent_rss_mib_100_pods"] = [
                round(tree_rss_kib(a.pid or 0) / 1024, 1) for a in agents[1:]
            ]
            results["idle_agent_rss_mib"] = round(tree_rss_kib(agents[0].pid or 0) / 1024, 1)
            results["apiserver_rss_mib_100_pods"] = round(tree_rss_kib(api.pid or 0) / 1024, 1)
            settle(admin, "hundred", daemon)
        report(results)
        failed = False
    except BaseException:
        failed = True
        raise
    finally:
        for process in reversed(processes):
            process.stop(20)
        etcd.stop()
        remove_all(daemon)
        dockerd_process.stop(daemon, clean=True)
        for name in namespaces:
            netns("delete", name)
        if failed or args.keep_logs:
            print(f"logs kept in {scratch}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def report(results: dict[str, object]) -> None:
    def figure(key: str) -> float | None:
        value = results.get(key)
        return float(value) if isinstance(value, int | float) else None

    def ratio(a: str, b: str) -> str:
        x, y = figure(a), figure(b)
        return f"{x / y:.2f}x" if x is not None and y else "-"

    print(f"machine: {results['machine']}; {results['date']}")
    print(
        "pod network: corral's bridge (a veth, address and route per pod); "
        "floors: none, and Docker's own bridge"
    )
    rows = [
        ("1 pod (p50 of runs)", "floor_one_none_p50_s", "corral_one_p50_s", None),
        ("30 replicas, 1 node", "floor_30_none_s", "corral_30_one_node_s", "swarm_30_s"),
        ("100 replicas, 3 nodes", "floor_100_none_s", "corral_100_three_nodes_s", None),
    ]
    print(f"{'':24}{'floor none':>11}{'floor bridge':>13}{'corral':>9}{'swarm':>8}"
          f"{'corral/floor none':>19}{'corral/floor bridge':>21}{'corral/swarm':>14}")  # fmt: skip
    for label, floor, corral, peer in rows:
        bridge = floor.replace("none", "bridge")

        def cell(key: str | None, width: int) -> str:
            value = figure(key) if key else None
            return f"{value:.2f}s".rjust(width) if value is not None else "-".rjust(width)

        print(
            f"{label:24}{cell(floor, 11)}{cell(bridge, 13)}{cell(corral, 9)}{cell(peer, 8)}"
            f"{ratio(corral, floor):>19}{ratio(corral, bridge):>21}"
            f"{ratio(corral, peer) if peer else '-':>14}"
        )
    if "corral_30_half_running_s" in results:
        print(
            f"corral, 30 replicas: half of them Running after "
            f"{figure('corral_30_half_running_s'):.2f}s (median of rounds)"
        )
    for key, value in results.items():
        if key.endswith("_rounds") or key.startswith("cpu_"):
            print(f"{key}: {value}")
    if "agent_rss_mib_100_pods" in results:
        print(f"agent RSS with 100 pods over 3 agents: {results['agent_rss_mib_100_pods']} MiB")
        print(f"agent RSS after its 30 pods went: {results['idle_agent_rss_mib']} MiB")
        print(f"API server RSS (all workers): {results['apiserver_rss_mib_100_pods']} MiB")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
