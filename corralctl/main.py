"""``corral``: the command line, in kubectl's style.

Errors come out as one line on stderr with a non-zero exit code; the
control plane's own processes (``apiserver`` and friends) are started by
module name so the CLI never imports them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from corral.api.errors import ApiError
from corral.client import kubeconfig
from corral.client.kubeconfig import KubeconfigError
from corral.client.rest import ConnectionFailed
from corral.patch import PatchError
from corralctl import (
    cluster,
    describe,
    down,
    edit,
    get,
    info,
    install,
    nodes,
    pods,
    rolling_update,
    rollout,
    setimage,
    top,
    up,
    write,
)
from corralctl.context import CliContext, UsageError
from corralctl.manifests import ManifestError

# Subcommands that run one of corral's server processes, started by module
# name so that the CLI never imports the component it starts.
SERVER_COMMANDS: dict[str, tuple[str, ...]] = {
    "apiserver": ("controlplane", "apiserver"),
    "controller-manager": ("controlplane", "controller-manager"),
    "scheduler": ("scheduler",),
    "agent": ("nodeagent",),
    "encryption": ("controlplane", "encryption"),
    "backup": ("controlplane", "backup"),
}


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kubeconfig", default=None, help="path to the kubeconfig file")
    common.add_argument("--context", default=None, help="the kubeconfig context to use")
    common.add_argument(
        "-s",
        "--server",
        default=None,
        help="the API server URL, or several comma separated to fail over across",
    )
    common.add_argument("--token", default=None, help="bearer token for the API server")
    common.add_argument("-n", "--namespace", default=None, help="the namespace to act in")
    common.add_argument(
        "-A", "--all-namespaces", action="store_true", help="act across all namespaces"
    )
    return common


def parser() -> argparse.ArgumentParser:
    common = common_options()
    p = argparse.ArgumentParser(
        prog="corral",
        description="corral: a small, real container orchestrator with a kubectl-style CLI.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    get.add_parser(sub, common)
    describe.add_parser(sub, common)
    write.add_parsers(sub, common)
    edit.add_parsers(sub, common)
    pods.add_parsers(sub, common)
    nodes.add_parsers(sub, common)
    rollout.add_parser(sub, common)
    setimage.add_parsers(sub, common)
    rolling_update.add_parser(sub, common)
    info.add_parsers(sub, common)
    up.add_parser(sub)
    down.add_parser(sub)
    cluster.add_parsers(sub, common)
    install.add_parsers(sub, common)
    top.add_parser(sub, common)
    for name in SERVER_COMMANDS:
        sub.add_parser(name, help=f"run the {name} (see `corral {name} --help`)", add_help=False)
    return p


def _exec_server(command: str, argv: list[str]) -> int:
    module, *sub = SERVER_COMMANDS[command]
    os.execv(sys.executable, [sys.executable, "-m", module, *sub, *argv])
    return 1  # unreachable: execv replaces this process


async def _run(args: argparse.Namespace) -> int:
    needs_server = getattr(args, "needs_server", True)
    if needs_server:
        config = kubeconfig.load(
            args.kubeconfig,
            context=args.context,
            server=args.server,
            token=args.token,
            namespace=args.namespace,
        )
    else:
        # Commands without the common options (init, install) have no server.
        config = kubeconfig.ClientConfig(server=getattr(args, "server", None) or "")
    namespace = getattr(args, "namespace", None)
    ctx = CliContext(
        config=config,
        namespace=namespace or config.namespace,
        all_namespaces=getattr(args, "all_namespaces", False),
        namespace_explicit=namespace is not None,
    )
    try:
        code: int = await args.func(ctx, args)
        return code
    finally:
        await ctx.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SERVER_COMMANDS:
        return _exec_server(argv[0], argv[1:])
    # Everything after "--" belongs to the command being run (exec), never to
    # corral's own flags, wherever the flags appear.
    after: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1 :]
    p = parser()
    args = p.parse_args(argv)
    args.after_dashes = after
    if args.command is None:
        p.print_help()
        return 2
    if getattr(args, "up", False):
        return up.run(args)
    if getattr(args, "down", False):
        return down.run(args)
    try:
        return asyncio.run(_run(args))
    except ApiError as error:
        print(f"Error from server ({error.reason}): {error.message}", file=sys.stderr)
    except (UsageError, ManifestError, KubeconfigError, PatchError) as error:
        print(f"error: {error}", file=sys.stderr)
    except ConnectionFailed as error:
        print(f"error: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
