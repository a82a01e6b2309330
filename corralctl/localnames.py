"""Each local cluster's own names and ranges, so several ``corral up`` share one machine.

As kind does, every local cluster gets an identity of its own: a short id
derived from its data dir, node names, a pod bridge, pod and Service ranges
(and with them the cluster DNS address, the gateway of a node's pod range)
and the prefix of its simulated hosts. The first cluster on a machine keeps
the historical defaults (the hostname as node name, ``crl0``,
10.244.0.0/16, 10.96.0.0/16, ``crl-sim``, nftables ``table ip corral``);
the K-th gets ``HOST-ID``, ``crlK``, 10.(244+K).0.0/16, 10.(96+K).0.0/16,
``crl-simK``, ``table ip corralK``. Two clusters whose pod networks share
this machine's namespace then keep to their own bridge, routes, DNS address
(the gateway of their pod range) and Service rules.

The choice is recorded in ``D/up.json`` and reused on every restart (etcd
holds Nodes and Services with addresses from those ranges), and registered
under ``/run/corral/clusters/ID.json`` so the next ``corral up`` sees what
is taken. An entry holds until ``corral down --purge`` or until its data dir
no longer records it. What still clashes (a flag given, or a data dir made
before ids, that names another's node, bridge or range; a busy port) is
refused before anything starts, naming the conflict and the flag to change.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corralctl import localcluster

# tmpfs: the registry describes what may run now, and a reboot empties it.
REGISTRY_ENV = "CORRAL_LOCAL_REGISTRY"
DEFAULT_REGISTRY = "/run/corral/clusters"
STATE_KEY = "cluster"
# 10.244-10.255 for pods and 10.96-10.107 for Services: never overlapping.
MAX_SLOTS = 12
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
DEFAULT_BRIDGE = "crl0"
DEFAULT_SIM_PREFIX = "crl-sim"
# Where a cluster's pod network lives: this machine's namespace (shared by
# every such cluster), namespaces of its own, or nowhere.
MACHINE, SIMULATED, NONE = "machine", "simulated", "none"


class NameConflict(Exception):
    """The cluster cannot get names and ranges of its own; the message says which and why."""


@dataclass(frozen=True)
class Identity:
    id: str
    slot: int
    node_name: str
    bridge: str
    cluster_cidr: str
    service_cidr: str
    simulated_prefix: str
    # The pod network's nftables table, apart when two share this machine's namespace.
    nft_table: str = "corral"
    network: str = MACHINE
    nodes: list[str] = field(default_factory=list)
    data_dir: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(raw: Any) -> Identity | None:
        if not isinstance(raw, dict):
            return None
        try:
            known = Identity.__dataclass_fields__
            return Identity(**{key: value for key, value in raw.items() if key in known})
        except (KeyError, TypeError):
            return None


def cluster_id(data_dir: Path) -> str:
    """Six hex digits of the data dir's path: stable, and distinct for distinct dirs."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:6]


def registry_dir() -> Path:
    return Path(os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY)


def slot_defaults(slot: int, ident: str, hostname: str) -> dict[str, str]:
    """The names and ranges the ``slot``-th cluster gets when no flag says otherwise."""
    if slot == 0:
        return {
            "node_name": hostname,
            "bridge": DEFAULT_BRIDGE,
            "cluster_cidr": DEFAULT_CLUSTER_CIDR,
            "service_cidr": DEFAULT_SERVICE_CIDR,
            "simulated_prefix": DEFAULT_SIM_PREFIX,
            "nft_table": "corral",
        }
    return {
        "node_name": f"{hostname}-{ident}",
        "bridge": f"crl{slot}",
        "cluster_cidr": f"10.{244 + slot}.0.0/16",
        "service_cidr": f"10.{96 + slot}.0.0/16",
        "simulated_prefix": f"{DEFAULT_SIM_PREFIX}{slot}",
        "nft_table": f"corral{slot}",
    }


def node_names(node_name: str, network: str, simulated_hosts: int, agent: bool) -> list[str]:
    if not agent:
        return []
    if network == SIMULATED:
        return [f"{node_name}-{index}" for index in range(simulated_hosts)]
    return [node_name]


# --- the registry of local clusters --------------------------------------------------


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One ``corral up`` at a time chooses: two choosing at once would pick the same slot."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def registered(directory: Path, excluding: str = "") -> list[Identity]:
    """The local clusters that hold their names: registered, and their data dir agrees."""
    found = []
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            other = Identity.from_json(json.loads(path.read_text()))
            if other is None or other.id == excluding:
                continue
            recorded = localcluster.read_state(Path(other.data_dir)).get(STATE_KEY) or {}
            # A data dir deleted, or reused by another cluster, frees the names.
            if isinstance(recorded, dict) and recorded.get("id") == other.id:
                found.append(other)
    return found


def unregister(data_dir: Path) -> bool:
    """Give the cluster's names back (``corral down --purge``); whether it held any."""
    path = registry_dir() / f"{cluster_id(data_dir)}.json"
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


# --- choosing -----------------------------------------------------------------------------


def _overlap(a: str, b: str) -> bool:
    return ipaddress.IPv4Network(a).overlaps(ipaddress.IPv4Network(b))


def conflicts(mine: Identity, other: Identity) -> list[str]:
    """Why ``mine`` cannot run beside ``other``: one line per clash, naming the flag."""
    where = f"the local cluster {other.id} (data dir {other.data_dir})"
    found = []
    shared = sorted(set(mine.nodes) & set(other.nodes))
    if shared:
        # Containers are found by their node's name: corral down of one would remove the other's.
        found.append(f"node name {shared[0]} is used by {where}; give another with --node-name")
    if mine.network == SIMULATED == other.network and (
        mine.simulated_prefix == other.simulated_prefix
    ):
        found.append(f"simulated hosts {mine.simulated_prefix}-* are {where}'s")
    # Apart even where namespaces would allow the same: an address names one pod.
    for flag, cidr in (
        ("--cluster-cidr", mine.cluster_cidr),
        ("--service-cidr", mine.service_cidr),
    ):
        for theirs in (other.cluster_cidr, other.service_cidr):
            if _overlap(cidr, theirs):
                found.append(f"{flag} {cidr} overlaps {theirs} of {where}")
    if mine.network == MACHINE == other.network:
        found += _machine_conflicts(mine, other, where)
    return found


def _machine_conflicts(mine: Identity, other: Identity, where: str) -> list[str]:
    found = []
    if mine.bridge == other.bridge:
        found.append(f"bridge {mine.bridge} is {where}'s; give another with --bridge-name")
    if mine.nft_table == other.nft_table:
        # Both agents would rewrite the same table of this namespace.
        found.append(f"nftables table ip {mine.nft_table} is {where}'s")
    return found


def _placement(args: Any) -> str:
    if args.no_agent or args.pod_network != "bridge":
        return NONE
    return SIMULATED if args.simulated_hosts else MACHINE


def _candidate(args: Any, data_dir: Path, slot: int, recorded: Identity | None) -> Identity:
    """Slot ``slot``'s names, or those recorded before; a flag given wins over both."""
    ident = cluster_id(data_dir)
    base = slot_defaults(slot, ident, socket.gethostname())
    if recorded is not None:
        base = {key: getattr(recorded, key) for key in base}
        slot = recorded.slot
    given = {
        "node_name": args.node_name,
        "bridge": args.bridge_name,
        "cluster_cidr": args.cluster_cidr,
        "service_cidr": args.service_cidr,
    }
    chosen = {**base, **{key: value for key, value in given.items() if value}}
    network = _placement(args)
    nodes = node_names(chosen["node_name"], network, args.simulated_hosts, not args.no_agent)
    return _identity(ident, slot, chosen, network, nodes, data_dir)


def _identity(
    ident: str,
    slot: int,
    names: dict[str, str],
    network: str = MACHINE,
    nodes: list[str] | None = None,
    data_dir: Path | None = None,
) -> Identity:
    return Identity(
        id=ident,
        slot=slot,
        node_name=names["node_name"],
        bridge=names["bridge"],
        cluster_cidr=names["cluster_cidr"],
        service_cidr=names["service_cidr"],
        simulated_prefix=names["simulated_prefix"],
        nft_table=names.get("nft_table", "corral"),
        network=network,
        nodes=nodes or [],
        data_dir=str(data_dir or ""),
    )


def _recorded(data_dir: Path) -> Identity | None:
    """What this data dir chose before; the first cluster's defaults for one made before ids."""
    state = localcluster.read_state(data_dir)
    found = Identity.from_json(state.get(STATE_KEY))
    if found is not None:
        return found
    if (data_dir / "etcd").exists():
        # etcd already holds Nodes and Services numbered from the default ranges.
        names = slot_defaults(0, "", socket.gethostname())
        return _identity(cluster_id(data_dir), 0, names, data_dir=data_dir)
    return None


def choose(args: Any, data_dir: Path) -> Identity:
    """This cluster's names and ranges, registered; NameConflict if they clash with a live one."""
    directory = registry_dir()
    with _locked(directory):
        ident = cluster_id(data_dir)
        others = registered(directory, excluding=ident)
        recorded = _recorded(data_dir)
        slots = [recorded.slot] if recorded is not None else list(range(MAX_SLOTS))
        fewest: list[str] | None = None
        for slot in slots:
            mine = _candidate(args, data_dir, slot, recorded)
            problems = [line for other in others for line in conflicts(mine, other)]
            if not problems:
                break
            if fewest is None or len(problems) < len(fewest):
                fewest = problems
        else:
            raise NameConflict("; ".join(dict.fromkeys(fewest or [])))
        entry = directory / f"{ident}.json"
        entry.write_text(json.dumps(mine.to_json(), indent=1) + "\n")
    data_dir.mkdir(parents=True, exist_ok=True)
    state = localcluster.read_state(data_dir)
    localcluster.write_state(data_dir, {**state, STATE_KEY: mine.to_json()})
    return mine


def apply_to(args: Any, mine: Identity) -> None:
    """Hand the chosen names to the rest of ``corral up`` through its flags."""
    args.node_name = mine.node_name
    args.cluster_cidr = mine.cluster_cidr
    args.service_cidr = mine.service_cidr
    args.bridge_name = mine.bridge
    args.simulated_prefix = mine.simulated_prefix
    args.nft_table = mine.nft_table
    args.cluster_id = mine.id


def busy_ports(host: str, ports: list[int]) -> list[int]:
    """Those of ``ports`` something listens on already (another cluster's API or agent)."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host if host != "0.0.0.0" else "", port))
            except OSError:
                busy.append(port)
    return busy
