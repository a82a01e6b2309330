"""``corral logs`` and ``corral exec``: into the containers of a pod, through the API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys

import aiohttp
import orjson

from corral.api.errors import ApiError
from corral.client.rest import resource_path
from corralctl.context import CliContext, UsageError
from corralctl.storelogs import add_store_flags, logs_from_store, store_directory, wants_store

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    logs = sub.add_parser("logs", parents=[common], help="print the logs of a container")
    logs.add_argument("pod", nargs="?", help="POD or pod/POD (or use -l)")
    logs.add_argument("container_arg", nargs="?", help="the container (or use -c)")
    logs.add_argument("-c", "--container", default="")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int, default=-1, help="lines from the end (-1: all)")
    logs.add_argument("--since", default="", help="only newer than this duration, e.g. 5m or 1h")
    logs.add_argument("--timestamps", action="store_true")
    logs.add_argument(
        "-p",
        "--previous",
        action="store_true",
        help="the previous, terminated instance of the container",
    )
    logs.add_argument("--limit-bytes", type=int, default=0)
    add_store_flags(logs)
    logs.set_defaults(func=run_logs)

    execute = sub.add_parser("exec", parents=[common], help="run a command in a container")
    execute.add_argument("pod", help="POD or pod/POD")
    execute.add_argument("-c", "--container", default="")
    execute.add_argument("-i", "--stdin", action="store_true", help="pass standard input")
    execute.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    execute.add_argument("command", nargs="*", help="COMMAND [ARGS...], after --")
    execute.set_defaults(func=run_exec)


def _pod_name(text: str) -> str:
    for prefix in ("pod/", "pods/", "po/"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    if "/" in text:
        raise UsageError(f"only pods have logs and exec (got {text})")
    return text


def _seconds(text: str) -> int:
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise UsageError(f'invalid duration "{text}" (use e.g. 30s, 5m or 1h)')
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


async def run_logs(ctx: CliContext, args: argparse.Namespace) -> int:
    if wants_store(args):
        return await logs_from_store(ctx, args, _seconds(args.since) if args.since else None)
    try:
        return await _logs_from_node(ctx, args)
    except ApiError as error:
        # The node is gone (or the pod with it): the cluster's log store has
        # what was shipped before.
        if error.code not in (404, 502, 503) or store_directory(args) is None:
            raise
        ctx.warn(f"{error.message}; reading the cluster log store")
        return await logs_from_store(ctx, args, _seconds(args.since) if args.since else None)


async def _logs_from_node(ctx: CliContext, args: argparse.Namespace) -> int:
    if not args.pod:
        raise UsageError("name a pod, or select pods with -l")
    pods = ctx.resolve("pods")
    name = _pod_name(args.pod)
    params = {
        "container": args.container or args.container_arg or "",
        "follow": "true" if args.follow else "",
        "tailLines": args.tail if args.tail >= 0 else None,
        "sinceSeconds": _seconds(args.since) if args.since else None,
        "timestamps": "true" if args.timestamps else "",
        "previous": "true" if args.previous else "",
        "limitBytes": args.limit_bytes or None,
    }
    path = resource_path(pods, ctx.namespace, name, "log")
    out = sys.stdout.buffer if ctx.out is sys.stdout else None
    async for chunk in ctx.client.stream_text(path, params):
        if out is not None:
            out.write(chunk)
            out.flush()
        else:
            ctx.out.write(chunk.decode(errors="replace"))
    return 0


async def run_exec(ctx: CliContext, args: argparse.Namespace) -> int:
    command = list(getattr(args, "after_dashes", None) or args.command)
    if not command:
        raise UsageError("you must specify at least one command for the container")
    pods = ctx.resolve("pods")
    name = _pod_name(args.pod)
    params: list[tuple[str, str]] = [("command", part) for part in command]
    params += [("stdout", "true"), ("stderr", "false" if args.tty else "true")]
    if args.stdin:
        params.append(("stdin", "true"))
    if args.tty:
        params.append(("tty", "true"))
    if args.container:
        params.append(("container", args.container))
    url = ctx.client.base + resource_path(pods, ctx.namespace, name, "exec")
    session = ctx.client.session
    try:
        socket = await session.ws_connect(
            url, params=params, protocols=("v5.channel.k8s.io", "v4.channel.k8s.io")
        )
    except aiohttp.WSServerHandshakeError as error:
        raise ApiError(error.status, "BadRequest", error.message or "exec was refused") from None
    status: dict[str, object] = {}
    async with socket:
        feeder = asyncio.create_task(_feed_stdin(socket)) if args.stdin else None
        try:
            async for message in socket:
                if message.type != aiohttp.WSMsgType.BINARY or not message.data:
                    continue
                channel, data = message.data[0], message.data[1:]
                if channel == 1:
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
                elif channel == 2:
                    sys.stderr.buffer.write(data)
                    sys.stderr.buffer.flush()
                elif channel == 3:
                    status = orjson.loads(data) if data else {}
        finally:
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
    if status.get("status") == "Failure":
        details = status.get("details") or {}
        causes = details.get("causes") if isinstance(details, dict) else None
        if causes:
            code = int(causes[0].get("message", "1"))
            return code
        raise ApiError(
            500,
            str(status.get("reason") or "InternalError"),
            str(status.get("message") or "exec failed"),
        )
    return 0


async def _feed_stdin(socket: aiohttp.ClientWebSocketResponse) -> None:
    loop = asyncio.get_running_loop()
    stdin = sys.stdin.buffer
    while True:
        # read1 returns what is there now, so interactive input is not held back.
        data = await loop.run_in_executor(None, getattr(stdin, "read1", stdin.read), 65536)
        if not data:
            await socket.send_bytes(bytes([255, 0]))  # v5: stdin is closed
            return
        await socket.send_bytes(bytes([0]) + data)
