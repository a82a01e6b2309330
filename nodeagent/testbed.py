"""``python -m nodeagent.testbed``: simulated hosts from the command line.

This is the testbed's public entry point: ``corral up --simulated-hosts``
and ``corral down`` run it, and ``--publish`` runs its ``forward``.

    up --hosts N [--prefix crl-sim]     make N hosts (removing the prefix's old ones
                                        first); prints them as JSON
    down [--prefix crl-sim]             remove them; prints JSON too
    forward --netns NAME --to IP:PORT [--netns NAME --to IP:PORT ...] --listen 127.0.0.1:PORT
                                        relay loopback connections into a host; with
                                        several, into the first one that answers

The CLI runs these as subprocesses, so it never imports the node agent,
and ``corral up`` supervises ``forward`` like its other children. A
NodePort on a simulated host answers only inside the crl-* namespaces;
``forward`` is how a browser on this machine reaches one, without touching
the machine's own routes. A NodePort answers on every host, so the relay
is given them all: when the host it used stops answering, the next
connection goes through another. The hosts themselves are made by
``nodeagent.network.testbed``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
import socket
import sys

from nodeagent.network.nsthread import acall_in_netns
from nodeagent.network.testbed import cleanup, create_hosts, namespaces, netns_path

DEFAULT_PREFIX = "crl-sim"
CONNECT_TIMEOUT = 10.0
# Each connection costs two sockets and, while it connects, a thread.
MAX_CONNECTIONS = 256
_CHUNK = 1 << 16


def _prefix(text: str) -> str:
    if not text.startswith("crl-") or len(text) < 5:
        raise argparse.ArgumentTypeError(f"simulated hosts are named crl-*, not {text!r}")
    return text


def _address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        number = int(port)
    except ValueError:
        number = 0
    if not colon or not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected IPv4:PORT, got {text!r}")
    return host, number


def _loopback(text: str) -> tuple[str, int]:
    host, port = _address(text)
    if not ipaddress.IPv4Address(host).is_loopback:
        # The relay reaches into the namespaces: nothing beyond this machine may use it.
        raise argparse.ArgumentTypeError(f"--listen must be a loopback address, not {host}")
    return host, port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nodeagent.testbed",
        description="Simulated hosts (network namespaces on an underlay) for demos and tests.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create the hosts, after removing the prefix's old ones")
    up.add_argument("--hosts", type=int, required=True)
    up.add_argument("--prefix", type=_prefix, default=DEFAULT_PREFIX)
    down = sub.add_parser("down", help="remove every namespace of the prefix")
    down.add_argument("--prefix", type=_prefix, default=DEFAULT_PREFIX)
    forward = sub.add_parser("forward", help="relay loopback connections into a host namespace")
    forward.add_argument(
        "--netns", type=_prefix, action="append", required=True, help="a crl-* namespace"
    )
    forward.add_argument("--listen", type=_loopback, required=True, metavar="127.0.0.1:PORT")
    forward.add_argument(
        "--to",
        type=_address,
        action="append",
        required=True,
        metavar="IP:PORT",
        help="where to connect inside the --netns of the same position",
    )
    forward.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT)
    forward.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)
    return p


async def up(count: int, prefix: str) -> dict[str, object]:
    await cleanup(prefix=prefix)
    bed = await create_hosts(count, prefix=prefix)
    return {
        "prefix": prefix,
        "underlay": bed.underlay,
        "hosts": [{"netns": host.name, "ip": host.ip} for host in bed.hosts],
    }


async def down(prefix: str) -> dict[str, object]:
    found = sorted(name for name in namespaces() if name.startswith(f"{prefix}-"))
    await cleanup(prefix=prefix)
    return {"prefix": prefix, "removed": found}


# --- forward --------------------------------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # One side reset: closing the other ends its half too.
        writer.close()


async def _connect_in(
    netns: str, target: tuple[str, int], timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    # A socket stays in the namespace it was created in; only its creation
    # needs the switched thread.
    sock = await acall_in_netns(
        netns_path(netns), lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    )
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, target)
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


Route = tuple[str, tuple[str, int]]  # a namespace, and the address to reach in it


class Relay:
    """Relays each connection through the route that last worked, trying the others in turn."""

    def __init__(self, routes: list[Route], connect_timeout: float, max_connections: int) -> None:
        if not routes:
            raise ValueError("a relay needs at least one route")
        self.routes = routes
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.preferred = 0
        self.active: set[asyncio.Task[None]] = set()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        count = len(self.routes)
        for step in range(count):
            index = (self.preferred + step) % count
            netns, target = self.routes[index]
            try:
                connection = await _connect_in(netns, target, self.connect_timeout)
            except (OSError, TimeoutError) as error:
                print(
                    f"forward: {netns} {target[0]}:{target[1]}: {error!r}",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            if index != self.preferred:
                print(f"forward: now through {netns} {target[0]}:{target[1]}", flush=True)
                self.preferred = index
            return connection
        return None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self.active) >= self.max_connections:
            writer.close()
            return
        self.active.add(task)
        try:
            connection = await self._connect()
            if connection is None:
                return
            up_reader, up_writer = connection
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self.active.discard(task)


async def forward(
    routes: list[Route],
    listen: tuple[str, int],
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Relay until SIGTERM or SIGINT."""
    existing = namespaces()
    for netns, _ in routes:
        if netns not in existing:
            raise SystemExit(f"forward: no network namespace {netns}")
    relay = Relay(routes, connect_timeout, max_connections)
    server = await asyncio.start_server(relay.handle, listen[0], listen[1], reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    through = ", ".join(f"{ip}:{port} in {netns}" for netns, (ip, port) in routes)
    print(f"forwarding {listen[0]}:{listen[1]} to {through}", flush=True)
    async with server:
        await stop.wait()
        server.close()
        for task in list(relay.active):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*relay.active, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "forward":
            if len(args.netns) != len(args.to):
                parser().error("forward: give one --to for each --netns")
            asyncio.run(
                forward(
                    list(zip(args.netns, args.to, strict=True)),
                    args.listen,
                    connect_timeout=args.connect_timeout,
                    max_connections=max(1, args.max_connections),
                )
            )
            return 0
        if args.command == "up":
            result = asyncio.run(up(args.hosts, args.prefix))
        else:
            result = asyncio.run(down(args.prefix))
    except Exception as error:
        # One line, for the caller's log: ip(8) and netlink say what failed.
        print(f"testbed {args.command}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
