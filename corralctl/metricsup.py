"""Every component's /metrics in ``corral up``: ports, flags, and the record in up.json.

The ports are chosen free once and kept in ``D/metrics-ports.json``, so a
restarted ``corral up`` serves at the same addresses (a Prometheus
configuration written for them keeps working). The API server serves its
/metrics behind authentication and RBAC on a port of its own; the
controller manager and the scheduler serve over TLS with the API server's
certificate (same machine, same names); the agent with its node serving
certificate. ``D/up.json`` gets ``metrics``: component -> URL.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Protocol

from corralctl import localcluster, processes
from corralctl.clusterpki import ClusterPki

PORTS_FILE = "metrics-ports.json"
COMPONENTS = ("apiserver", "controller-manager", "scheduler", "agent")


class Startup(Protocol):
    """What corral up's startup carries that this needs."""

    args: argparse.Namespace
    data_dir: Path


def ports(data_dir: Path) -> dict[str, int]:
    """A port per component: the ones chosen before, or free ones now."""
    path = data_dir / PORTS_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    if not isinstance(saved, dict):
        saved = {}
    fresh = iter(processes.lasting_ports(len(COMPONENTS)))
    chosen = {
        component: int(saved[component]) if isinstance(saved.get(component), int) else next(fresh)
        for component in COMPONENTS
    }
    path.write_text(json.dumps(chosen))
    return chosen


def url_host(host: str) -> str:
    """Where a scraper on this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def urls(host: str, chosen: dict[str, int]) -> dict[str, str]:
    return {
        component: f"https://{url_host(host)}:{port}/metrics" for component, port in chosen.items()
    }


def api_args(data_dir: Path) -> list[str]:
    return ["--metrics-port", str(ports(data_dir)["apiserver"])]


def component_args(component: str, startup: Startup, pki: ClusterPki) -> list[str]:
    """The controller manager's or scheduler's kubeconfig, and its metrics flags.

    Its metrics port, and the API server's certificate to serve them with.
    """
    return [
        "--kubeconfig", str(pki.component_kubeconfig(component)),
        "--metrics-bind-address", f"{startup.args.host}:{ports(startup.data_dir)[component]}",
        "--tls-cert-file", str(pki.apiserver_cert),
        "--tls-private-key-file", str(pki.apiserver_key),
    ]  # fmt: skip


def agent_args(data_dir: Path) -> list[str]:
    """The agent serves on the loopback, over TLS with its node serving certificate."""
    return ["--metrics-bind-address", f"127.0.0.1:{ports(data_dir)['agent']}"]


def report(startup: Startup, *, agent: bool) -> dict[str, str]:
    """Print each component's metrics URL and add them to up.json as ``metrics``.

    Simulated agents run on hosts of their own and serve no metrics here.
    """
    served = urls(startup.args.host, ports(startup.data_dir))
    if not agent:
        served.pop("agent")
    for component, url in served.items():
        print(f"metrics       {component:<19}{url}")
    print(f"{'':14}(the API server's needs credentials: kubectl --server ... get --raw /metrics)")
    state = localcluster.read_state(startup.data_dir)
    state["metrics"] = served
    localcluster.write_state(startup.data_dir, state)
    return served
