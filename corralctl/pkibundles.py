"""Copies of the master's files, one directory per process, each with only what it reads.

On one host the control plane's processes share ``DATA_DIR/pki``. Where they
run apart (docker-compose gives each container only the volumes it names), a
process handed that whole directory would also hold ``ca.key``, the static
tokens and the Secrets encryption key. ``corral init --bundles-dir OUT``
writes instead, rewritten on every run so renewed certificates reach them:

    OUT/node/ca.crt                                the cluster CA, for agents
    OUT/etcd/ca.crt, server.crt, server.key        etcd's CA and serving pair
    OUT/scheduler/kubeconfig                       its identity and the CA
    OUT/controller-manager/kubeconfig
"""

from __future__ import annotations

from pathlib import Path

from corral import pki
from corralctl.clusterpki import COMPONENT_USERS, ClusterPki
from corralctl.etcdpki import EtcdPki

NODE = "node"
ETCD = "etcd"


def bundle_sources(cluster: ClusterPki, etcd: EtcdPki) -> dict[str, dict[str, Path]]:
    """For each bundle, the files it holds: ``{bundle: {name in it: source}}``."""
    bundles = {
        NODE: {"ca.crt": cluster.ca_cert},
        ETCD: {
            "ca.crt": etcd.ca_cert,
            "server.crt": etcd.server_cert,
            "server.key": etcd.server_key,
        },
    }
    for component in COMPONENT_USERS:
        bundles[component] = {"kubeconfig": cluster.component_kubeconfig(component)}
    return bundles


def write_bundles(out: Path, cluster: ClusterPki, etcd: EtcdPki) -> list[Path]:
    """Write every bundle under ``out``; the directories written."""
    written = []
    for bundle, files in bundle_sources(cluster, etcd).items():
        directory = out / bundle
        directory.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            pki.write_private(directory / name, source.read_bytes())
        written.append(directory)
    return written
