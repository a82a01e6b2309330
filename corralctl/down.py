"""``corral down``: stop a ``corral up`` and remove what it left, even after a crash.

It finds them by what ``corral up`` records (see ``localcluster``): stops
the running ``corral up`` (which cleans up after itself), then removes
whatever is still there: its processes, the nodes' containers, the
simulated hosts, and the mounts under the data dir; with ``--purge``, the
data dir itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from corral.mounts import mounts_under
from corralctl import dockerd, localnames
from corralctl.localcluster import (
    PID_FILE,
    agents_on_hosts,
    default_data_dir,
    leftover_processes,
    leftover_processes_named,
    read_state,
    running_up,
    stop_pids,
)

NODE_LABEL = "io.corral.node"
CLUSTER_LABEL = "io.corral.cluster"
TESTBED = "nodeagent.testbed"
TESTBED_TIMEOUT = 120.0
# corral up stops its children in turn, each with its own bound; this covers them all.
STOP_TIMEOUT = 180.0
_LEFTOVER_GRACE = 15.0
_DOCKERD_GRACE = 30.0
# dockerd and what it starts; they inherit corral up's marker too.
_DOCKER_FAMILY = ("dockerd", "containerd", "docker-", "runc")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "down", help="stop a corral up and remove what it left (containers, hosts, mounts)"
    )
    p.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="the data dir corral up ran with (default: %(default)s)",
    )
    p.add_argument("--purge", action="store_true", help="also delete the data dir")
    p.set_defaults(func=None, down=True)


# --- the pieces, shared with corral up ---------------------------------------------------


def remove_node_containers(docker_host: str, nodes: Iterable[str], cluster: str = "") -> list[str]:
    """Force-remove the containers the agents of ``nodes`` made; their names.

    With ``cluster``, one labelled as another local cluster's stays, whatever its node.
    """
    wanted = set(nodes)
    removed: list[str] = []
    if not wanted:
        return removed
    client = docker.DockerClient(base_url=docker_host, timeout=60)
    try:
        for container in client.containers.list(all=True, filters={"label": NODE_LABEL}):
            theirs = container.labels.get(CLUSTER_LABEL, cluster)
            if container.labels.get(NODE_LABEL) in wanted and (not cluster or theirs == cluster):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
                    removed.append(container.name)
    finally:
        client.close()
    return removed


def docker_answers(docker_host: str) -> bool:
    if docker_host.startswith("unix://"):
        return dockerd.responds(Path(docker_host.removeprefix("unix://")))
    client = docker.DockerClient(base_url=docker_host, timeout=10)
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False
    finally:
        client.close()


def unmount_under(directory: Path) -> list[str]:
    """Unmount everything below ``directory``, deepest first; the mount points."""
    points = mounts_under(str(directory.resolve()))
    for point in points:
        done = subprocess.run(["umount", point], capture_output=True, check=False)
        if done.returncode != 0:
            # Busy (a process still has it open): detach it now, freed when released.
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return points


def testbed(*argv: str, timeout: float = TESTBED_TIMEOUT) -> dict[str, Any]:
    """Run the simulated-hosts CLI; its JSON answer. Raises RuntimeError with its error."""
    done = subprocess.run(
        [sys.executable, "-m", TESTBED, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()
        raise RuntimeError(message[-1] if message else f"exit code {done.returncode}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


# --- corral down ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    teardown = _Teardown(data_dir, purge=args.purge)
    pid = running_up(data_dir)
    if pid is not None:
        print(f"stopping corral up (pid {pid})...", flush=True)
        stop_pids([pid], STOP_TIMEOUT)
        teardown.did(f"stopped corral up (pid {pid})")
    teardown.load_state()
    # Everything but Docker first, so no agent recreates what is removed; a
    # dockerd of corral's own that still runs then removes its containers.
    teardown.attempt("leftover processes", lambda: teardown.sweep(docker_family=False))
    teardown.attempt("containers", teardown.containers)
    teardown.attempt("leftover processes", lambda: teardown.sweep(docker_family=True))
    teardown.attempt("simulated hosts", teardown.hosts)
    teardown.attempt("master hosts", teardown.master_hosts)
    teardown.attempt("mounts", teardown.mounts)
    if args.purge:
        teardown.attempt("purge", teardown.purge)
        # Its names and ranges are free for the next local cluster once its data is gone.
        if not data_dir.exists() and localnames.unregister(data_dir):
            teardown.did(f"released the local cluster names of {data_dir}")
    else:
        with contextlib.suppress(FileNotFoundError):
            (data_dir / PID_FILE).unlink()
    if teardown.problems:
        print(
            f"corral down: {len(teardown.problems)} thing(s) could not be removed",
            file=sys.stderr,
        )
        return 1
    if not teardown.removed:
        print(f"nothing to do: no corral up or leftovers for {data_dir}")
    return 0


class _Teardown:
    """corral down's steps; each says what it removed, and a failed one does not stop the rest."""

    def __init__(self, data_dir: Path, *, purge: bool) -> None:
        self.data_dir = data_dir
        self.purging = purge
        self.removed: list[str] = []
        self.problems: list[str] = []
        self.docker_host = ""
        self.nodes: list[str] = []
        self.own_docker = ""
        self.simulated_prefix = ""
        self.masters_prefix = ""
        self.cluster = ""

    def load_state(self) -> None:
        state = read_state(self.data_dir)
        self.docker_host = str(state.get("docker_host") or "")
        self.nodes = [str(node) for node in state.get("nodes") or []]
        self.own_docker = str(state.get("docker_root") or "")
        self.simulated_prefix = str(state.get("simulated_prefix") or "")
        masters = state.get("masters")
        if isinstance(masters, dict):
            self.masters_prefix = str(masters.get("netns_prefix") or "")
        recorded = state.get(localnames.STATE_KEY)
        self.cluster = str(recorded.get("id") or "") if isinstance(recorded, dict) else ""

    def did(self, line: str) -> None:
        self.removed.append(line)
        print(line, flush=True)

    def attempt(self, what: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as error:
            self.problems.append(f"{what}: {error}")
            print(f"warning: {what}: {error}", file=sys.stderr, flush=True)

    def _roots(self) -> list[Path]:
        return [self.data_dir] + ([Path(self.own_docker)] if self.own_docker else [])

    def sweep(self, docker_family: bool) -> None:
        found = {
            leftover: name
            for leftover, name in leftover_processes(self.data_dir).items()
            if name.startswith(_DOCKER_FAMILY) == docker_family
        }
        if docker_family:
            # dockerd first: it stops containerd and the shims, which killed
            # under running containers would leave those containers' processes.
            stop_pids([p for p, name in found.items() if name == "dockerd"], _DOCKERD_GRACE)
            stop_pids(leftover_processes_named(self.data_dir, _DOCKER_FAMILY), _LEFTOVER_GRACE)
        else:
            stop_pids(found, _LEFTOVER_GRACE)
        for leftover, name in sorted(found.items()):
            self.did(f"stopped leftover process {leftover} ({name})")

    def containers(self) -> None:
        if not self.docker_host or not self.nodes:
            return
        if not docker_answers(self.docker_host):
            if self.own_docker and not self.purging:
                print(
                    f"note: corral's own Docker ({self.own_docker}) is not running; containers "
                    "left in it stay there (--purge deletes it)"
                )
            elif not self.own_docker:
                print(f"note: no Docker answers at {self.docker_host}; containers left as they are")
            return
        for name in remove_node_containers(self.docker_host, self.nodes, self.cluster):
            self.did(f"removed container {name}")

    def hosts(self) -> None:
        prefix = self.simulated_prefix
        if not prefix:
            return
        # Ours are stopped by now: an agent still on these hosts is another corral up's.
        users = agents_on_hosts(prefix)
        if users:
            print(f"note: {prefix}-* are in use by other agents (pids {users}); left alone")
            return
        for name in testbed("down", "--prefix", prefix)["removed"]:
            self.did(f"removed network namespace {name}")

    def master_hosts(self) -> None:
        # Their etcd members and API servers were swept above: nothing else uses them.
        if self.masters_prefix:
            for name in testbed("down", "--prefix", self.masters_prefix)["removed"]:
                self.did(f"removed network namespace {name}")

    def mounts(self) -> None:
        for root in self._roots():
            for point in unmount_under(root):
                self.did(f"unmounted {point}")

    def purge(self) -> None:
        for root in self._roots():
            if not root.exists():
                continue
            # rmtree follows into mount points: never with one left below.
            remaining = mounts_under(str(root))
            if remaining:
                raise RuntimeError(f"{root} still has mounts ({remaining[0]}); not deleted")
            shutil.rmtree(root)
            self.did(f"deleted {root}")
