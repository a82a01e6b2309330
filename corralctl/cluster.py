"""``init`` and ``token create``: a multi-host cluster's certificates and join tokens.

``corral up`` does all of this for one machine. On several machines the
master runs ``corral init`` once, starts the API server with the flags it
prints, and hands each new machine a join token from ``corral token create``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from corral.api.resources import REGISTRY
from corral.client import kubeconfig
from corral.client.kubeconfig import ClientConfig
from corral.client.rest import Client
from corralctl import bootstraptokens, masterjoin
from corralctl.certbundle import BundleError
from corralctl.clusterpki import ClusterPki
from corralctl.context import CliContext, UsageError
from corralctl.etcdpki import EtcdPki
from corralctl.pkibundles import write_bundles

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> timedelta | None:
    """``24h``, ``30m``, ``7d``; ``0`` means the token never expires."""
    if text == "0":
        return None
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"--ttl: {text!r} is not a duration like 24h, 30m or 0")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


def prepare_pki(data_dir: Path, hosts: list[str]) -> ClusterPki:
    """The CA, certificates, static token and encryption key: created once, then kept."""
    cluster_pki = ClusterPki(data_dir / "pki")
    cluster_pki.ensure(hosts)
    if not cluster_pki.encryption_key_file.exists():
        # The key file's format belongs to the control plane; the CLI never imports it.
        subprocess.run(
            [sys.executable, "-m", "controlplane", "encryption", "new-config",
             "--out", str(cluster_pki.encryption_key_file)],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return cluster_pki


def serving_hosts(host: str, extra: list[str]) -> list[str]:
    """Every name a client may reach the API server by, for its certificate."""
    names = [socket.gethostname(), *extra]
    if host in ("0.0.0.0", "::", ""):
        with contextlib.suppress(OSError):
            names += sorted(
                {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
            )
    else:
        names.append(host)
    return names


async def create_join_token(config: ClientConfig, ttl: timedelta | None) -> str:
    """A new bootstrap token, stored in the cluster: what ``corral agent`` joins with."""
    token_id, token_secret = bootstraptokens.new_token()
    secret = bootstraptokens.token_secret(
        token_id, token_secret, now=datetime.now(UTC), ttl=ttl, description="corral join token"
    )
    secrets = REGISTRY.by_kind("v1", "Secret")
    assert secrets is not None
    async with Client(config) as client:
        await client.create(secrets, secret, bootstraptokens.NAMESPACE)
    return f"{token_id}.{token_secret}"


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    init = sub.add_parser("init", help="create a multi-host cluster's CA, certificates and keys")
    init.add_argument("--data-dir", required=True, help="where the master keeps pki/")
    init.add_argument("--host", default="0.0.0.0", help="the API server's listen address")
    init.add_argument("--port", type=int, default=6443)
    init.add_argument(
        "--san", action="append", default=[], help="another name or address for the certificate"
    )
    init.add_argument(
        "--etcd-san",
        action="append",
        default=[],
        help="a name or address the API server reaches etcd by, for etcd's certificate",
    )
    init.add_argument(
        "--bundles-dir",
        help="also write, per process run apart from the master's files (nodes, etcd, "
        "scheduler, controller manager), a directory with only what it reads",
    )
    init.set_defaults(func=run_init, needs_server=False)

    token = sub.add_parser("token", help="bootstrap tokens that let new nodes join")
    tsub = token.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", parents=[common], help="create a join token")
    create.add_argument(
        "--ttl",
        type=parse_ttl,
        default=None,
        help="how long the token works: 24h (default; 2h with --master), 30m, 7d, "
        "or 0 for ever (not with --master)",
    )
    create.add_argument("--print-join-command", action="store_true")
    create.add_argument(
        "--master",
        action="store_true",
        help="a token for adding a master: also upload the cluster's keys, sealed, and "
        "print the corral install master --join command (run it on a master)",
    )
    create.add_argument(
        "--etc-dir",
        default="/etc/corral",
        help="with --master: this master's configuration, with pki/ (default: %(default)s)",
    )
    create.set_defaults(func=run_token_create)


async def run_init(ctx: CliContext, args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    cluster_pki = prepare_pki(data_dir, serving_hosts(args.host, args.san))
    etcd_pki = EtcdPki(cluster_pki.root)
    etcd_pki.ensure(args.etcd_san)
    name = socket.gethostname()
    server = f"https://{name}:{args.port}"
    cluster_pki.write_kubeconfigs(server)
    admin_path = data_dir / "kubeconfig"
    kubeconfig.write(admin_path, cluster_pki.admin_kubeconfig(server))
    p, e = cluster_pki, etcd_pki
    print(f"wrote the cluster CA, certificates and keys under {p.root}")
    print(f"admin kubeconfig: {admin_path}")
    if args.bundles_dir:
        for directory in write_bundles(Path(args.bundles_dir).resolve(), p, e):
            print(f"bundle: {directory}")
    etcd_host = args.etcd_san[0] if args.etcd_san else "127.0.0.1"
    print("\nstart etcd serving TLS to clients with certificates from its own CA:")
    print(f"  etcd --listen-client-urls https://{etcd_host}:2379 "
          f"--advertise-client-urls https://{etcd_host}:2379 \\\n"
          f"    --client-cert-auth --trusted-ca-file {e.ca_cert} \\\n"
          f"    --cert-file {e.server_cert} --key-file {e.server_key} ...")  # fmt: skip
    print("start the API server:")
    print(f"  corral apiserver --host {args.host} --port {args.port} \\\n"
          f"    --etcd https://{etcd_host}:2379 --etcd-cafile {e.ca_cert} \\\n"
          f"    --etcd-certfile {e.apiserver_client_cert} "
          f"--etcd-keyfile {e.apiserver_client_key} \\\n"
          f"    --tls-cert-file {p.apiserver_cert} --tls-private-key-file {p.apiserver_key} \\\n"
          f"    --client-ca-file {p.ca_cert} --client-ca-key-file {p.ca_key} \\\n"
          f"    --node-serving-ca-file {p.node_serving_ca_cert} "
          f"--node-serving-ca-key-file {p.node_serving_ca_key} \\\n"
          f"    --token-auth-file {p.tokens} \\\n"
          f"    --service-account-signing-key-file {p.service_account_key} "
          f"--service-account-key-file {p.service_account_public_key} \\\n"
          f"    --agent-client-certificate {p.apiserver_client_cert} "
          f"--agent-client-key {p.apiserver_client_key} \\\n"
          f"    --encryption-provider-config {p.encryption_key_file} \\\n"
          f"    --audit-log-path {data_dir / 'logs' / 'audit.log'}")  # fmt: skip
    for component in ("controller-manager", "scheduler"):
        print(f"  corral {component} --kubeconfig {p.component_kubeconfig(component)}")
    print("\nthen, for each node:  corral token create --print-join-command "
          f"--kubeconfig {admin_path}")  # fmt: skip
    del ctx
    return 0


async def run_token_create(ctx: CliContext, args: argparse.Namespace) -> int:
    if not ctx.config.ca_data and ctx.config.server.startswith("https"):
        raise UsageError("the kubeconfig has no cluster CA to hand to the joining node")
    if args.master:
        return await _master_token(ctx, args)
    ttl = timedelta(hours=24) if args.ttl is None else args.ttl
    token = await create_join_token(ctx.config, ttl)
    if not args.print_join_command:
        print(token)
        return 0
    print(f"# copy the cluster CA to the node as ca.crt first, then run there:\n"
          f"corral agent --server {ctx.config.server} --ca-file ca.crt "
          f"--bootstrap-token {token} --node-name $(hostname)")  # fmt: skip
    return 0


async def _master_token(ctx: CliContext, args: argparse.Namespace) -> int:
    if args.ttl is None:
        ttl = masterjoin.MASTER_TOKEN_TTL
    elif args.ttl > timedelta(0):
        ttl = args.ttl
    else:
        raise UsageError("--ttl: a master join token carries the cluster's keys: it must expire")
    etc_dir = Path(args.etc_dir)
    try:
        made = await masterjoin.upload(ctx.config, etc_dir, ttl)
    except BundleError as error:
        raise UsageError(str(error)) from None
    server = ctx.config.endpoints[0]
    print(f"# uploaded the cluster's keys, sealed; they and the token expire at "
          f"{made.expires:%Y-%m-%d %H:%M:%S} UTC.\n"
          f"# copy {etc_dir / 'pki' / 'ca.crt'} to the new master as ca.crt, then run there:\n"
          f"corral install master --join {server} --token {made.token} \\\n"
          f"    --certificate-key {made.certificate_key} --ca-file ca.crt "
          f"--advertise-address ADDRESS")  # fmt: skip
    return 0
