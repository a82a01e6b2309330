"""``version``, ``api-resources`` and ``config``: the client, the server and kubeconfigs."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from corral.client import kubeconfig
from corral.objects import Obj
from corral.version import KUBE_MAJOR, KUBE_MINOR, VERSION
from corralctl.context import CliContext, UsageError
from corralctl.printing import TablePrinter, dump


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    v = sub.add_parser("version", parents=[common], help="print the client and server versions")
    v.add_argument("--client", action="store_true", help="the client version only")
    v.add_argument("-o", "--output", choices=("json", "yaml"))
    v.set_defaults(func=run_version)

    a = sub.add_parser("api-resources", parents=[common], help="list the kinds the server serves")
    a.add_argument("--namespaced", choices=("true", "false"))
    a.add_argument("--api-group", default=None)
    a.add_argument("-o", "--output", choices=("wide", "name"))
    a.set_defaults(func=run_api_resources)

    c = sub.add_parser("config", help="view and change kubeconfig files")
    csub = c.add_subparsers(dest="config_command", required=True)
    view = csub.add_parser("view", parents=[common], help="print the merged kubeconfig")
    view.add_argument("--raw", action="store_true", help="show credentials too")
    view.set_defaults(func=run_config_view, needs_server=False)
    contexts = csub.add_parser("get-contexts", parents=[common], help="list contexts")
    contexts.set_defaults(func=run_config_contexts, needs_server=False)
    current = csub.add_parser("current-context", parents=[common], help="print the current context")
    current.set_defaults(func=run_config_current, needs_server=False)
    use = csub.add_parser("use-context", parents=[common], help="make a context current")
    use.add_argument("name")
    use.set_defaults(func=run_config_use, needs_server=False)
    install = csub.add_parser(
        "install",
        parents=[common],
        help="merge a kubeconfig (such as DATA_DIR/kubeconfig) into ~/.kube/config, the default "
        "that corral and kubectl read",
    )
    install.add_argument("source", help="the kubeconfig to merge in")
    install.add_argument("--target", default=str(kubeconfig.DEFAULT_PATH))
    install.set_defaults(func=run_config_install, needs_server=False)


def client_version() -> Obj:
    return {
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0+corral-{VERSION}",
        "platform": "python",
    }


async def run_version(ctx: CliContext, args: argparse.Namespace) -> int:
    client = client_version()
    server: Obj | None = None
    if not args.client:
        server = await ctx.client.request("GET", "/version")
    if args.output:
        out: Obj = {"clientVersion": client}
        if server is not None:
            out["serverVersion"] = server
        dump(out, args.output, ctx.out)
        return 0
    ctx.out.write(f"Client Version: {client['gitVersion']}\n")
    if server is not None:
        ctx.out.write(f"Server Version: {server.get('gitVersion', 'unknown')}\n")
    return 0


async def run_api_resources(ctx: CliContext, args: argparse.Namespace) -> int:
    groups: list[tuple[str, str]] = [("", "v1")]
    apis = await ctx.client.request("GET", "/apis")
    for group in apis.get("groups") or []:
        preferred = group.get("preferredVersion", {}).get("version", "v1")
        groups.append((group["name"], preferred))
    lines = []
    header = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    if args.output == "wide":
        header += ["VERBS", "CATEGORIES"]
    for group, version in groups:
        if args.api_group is not None and group != args.api_group:
            continue
        path = f"/apis/{group}/{version}" if group else "/api/v1"
        listing = await ctx.client.request("GET", path)
        for resource in listing.get("resources") or []:
            if "/" in resource["name"]:
                continue
            if args.namespaced and str(resource.get("namespaced")).lower() != args.namespaced:
                continue
            if args.output == "name":
                ctx.out.write(f"{resource['name']}{'.' + group if group else ''}\n")
                continue
            line = [
                resource["name"],
                ",".join(resource.get("shortNames") or []),
                f"{group}/{version}" if group else version,
                str(resource.get("namespaced")).lower(),
                resource.get("kind", ""),
            ]
            if args.output == "wide":
                line += [
                    ",".join(resource.get("verbs") or []),
                    ",".join(resource.get("categories") or []),
                ]
            lines.append(line)
    if args.output != "name":
        TablePrinter(ctx.out).render([header, *sorted(lines)])
    return 0


def _merged(args: argparse.Namespace) -> Obj:
    return kubeconfig.merged(kubeconfig.search_paths(args.kubeconfig))


async def run_config_view(ctx: CliContext, args: argparse.Namespace) -> int:
    data = _merged(args)
    if not args.raw:
        for entry in data.get("users") or []:
            for key in list(entry.get("user") or {}):
                if key in ("token", "client-key-data", "client-certificate-data"):
                    entry["user"][key] = "REDACTED" if key == "token" else "DATA+OMITTED"
        for entry in data.get("clusters") or []:
            if (entry.get("cluster") or {}).get("certificate-authority-data"):
                entry["cluster"]["certificate-authority-data"] = "DATA+OMITTED"
    ctx.out.write(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", **data}, sort_keys=False))
    return 0


async def run_config_contexts(ctx: CliContext, args: argparse.Namespace) -> int:
    data = _merged(args)
    current = data.get("current-context")
    lines = [["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]]
    for entry in data.get("contexts") or []:
        context = entry.get("context") or {}
        lines.append(
            [
                "*" if entry.get("name") == current else "",
                entry.get("name", ""),
                context.get("cluster", ""),
                context.get("user", ""),
                context.get("namespace", ""),
            ]
        )
    TablePrinter(ctx.out).render(lines)
    return 0


async def run_config_current(ctx: CliContext, args: argparse.Namespace) -> int:
    current = _merged(args).get("current-context")
    if not current:
        raise UsageError("current-context is not set")
    ctx.out.write(f"{current}\n")
    return 0


async def run_config_use(ctx: CliContext, args: argparse.Namespace) -> int:
    path = kubeconfig.search_paths(args.kubeconfig)[0]
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    if not isinstance(data, dict) or not any(
        c.get("name") == args.name for c in data.get("contexts") or []
    ):
        raise UsageError(f'no context exists with the name: "{args.name}"')
    data["current-context"] = args.name
    kubeconfig.write(path, data)
    ctx.out.write(f'Switched to context "{args.name}".\n')
    return 0


async def run_config_install(ctx: CliContext, args: argparse.Namespace) -> int:
    source = yaml.safe_load(Path(args.source).read_text())
    if not isinstance(source, dict):
        raise UsageError(f"{args.source} is not a kubeconfig")
    target = Path(args.target)
    kubeconfig.merge_into(target, source)
    ctx.out.write(
        f"merged {args.source} into {target}; current context: {source.get('current-context')}\n"
    )
    return 0
