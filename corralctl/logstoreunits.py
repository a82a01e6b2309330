"""The cluster log store in ``corral install master``: journal-remote behind stunnel.

Agents on other hosts ship over the network, and only nodes may write: but
Debian's systemd-journal-remote is built without client-certificate checks
(no ``--trust``). So it listens on the master's loopback, and stunnel (Debian's
``stunnel4``) takes TLS on the advertised port, requires a client certificate
of the cluster CA (every agent's node certificate is one) and forwards to it.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from corral import pki
from corralctl import logstore
from corralctl.clusterpki import ClusterPki
from corralctl.units import Layout

DEFAULT_PORT = logstore.DEFAULT_PORT
STORE_UNIT = "corral-log-store.service"
TLS_UNIT = "corral-log-store-tls.service"
STUNNEL_PATHS = ("/usr/bin/stunnel4", "/usr/bin/stunnel")


def stunnel_binary() -> str | None:
    for path in STUNNEL_PATHS:
        if shutil.which(path):
            return path
    return None


def store_directory(layout: Layout) -> Path:
    return layout.state_dir / "logstore"


def stunnel_config(layout: Layout, cluster_pki: ClusterPki, port: int) -> str:
    return "\n".join(
        [
            "foreground = yes",
            "syslog = no",
            "[corral-log-store]",
            f"accept = {port}",
            f"connect = 127.0.0.1:{port - 1}",
            f"cert = {cluster_pki.root / 'log-store.crt'}",
            f"key = {cluster_pki.root / 'log-store.key'}",
            f"CAfile = {cluster_pki.ca_cert}",
            # Only a certificate the cluster CA signed: the agents' node certificates.
            "verifyChain = yes",
            "requireCert = yes",
            "",
        ]
    )


def _service(description: str, argv: list[str], after: str) -> str:
    return (
        "[Unit]\n"
        f"Description={description}\n"
        f"After={after}\n"
        "\n[Service]\n"
        "Type=simple\n"
        f"ExecStart={' '.join(shlex.quote(part) for part in argv)}\n"
        "Restart=always\n"
        "RestartSec=2\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def log_store_units(
    layout: Layout, cluster_pki: ClusterPki, hosts: list[str], port: int = DEFAULT_PORT
) -> dict[str, str]:
    """The two units, with the serving certificate and stunnel's configuration written.

    Raises LogStoreError when journal-remote or stunnel is not installed.
    """
    stunnel = stunnel_binary()
    if stunnel is None:
        raise logstore.LogStoreError("stunnel is not installed: apt-get install stunnel4")
    journal_remote = logstore.journal_remote_argv(store_directory(layout), f"127.0.0.1:{port - 1}")
    pair_cert, pair_key = cluster_pki.root / "log-store.crt", cluster_pki.root / "log-store.key"
    if not pair_cert.exists():
        wanted = sorted({"localhost", "127.0.0.1", *hosts})
        pair = pki.issue(
            cluster_pki.ca(), "corral-log-store", server=True, client=False, hosts=wanted
        )
        pki.write_pair(pair, pair_cert, pair_key)
    config = layout.etc_dir / "log-store-stunnel.conf"
    config.write_text(stunnel_config(layout, cluster_pki, port))
    store_directory(layout).mkdir(parents=True, exist_ok=True)
    return {
        STORE_UNIT: _service(
            "corral cluster log store (systemd-journal-remote)",
            journal_remote,
            "network.target",
        ),
        TLS_UNIT: _service(
            "corral cluster log store: TLS for node certificates (stunnel)",
            [stunnel, str(config)],
            f"network-online.target {STORE_UNIT}",
        ),
    }


def units_or_note(layout: Layout, cluster_pki: ClusterPki, hosts: list[str]) -> dict[str, str]:
    """The log store's units; none, with a note, when what it needs is not installed."""
    try:
        return log_store_units(layout, cluster_pki, hosts)
    except logstore.LogStoreError as error:
        print(f"no cluster log store: {error}; container logs stay on the nodes")
        return {}


def agent_store_url(server: str, log_store: str) -> str:
    """``--log-store`` for a minion's agent: given, "none", or the master's default port."""
    if log_store == "none":
        return ""
    if log_store:
        return log_store
    host = urlsplit(server).hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{DEFAULT_PORT}"
