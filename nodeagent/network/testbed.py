"""Several simulated hosts on one machine, for tests and demos.

Each "host" is a network namespace with an ``eth0`` on a shared underlay: a
bridge ``crlu0`` inside an underlay namespace of its own, addresses from
192.168.240.0/24. The underlay holds .254 and forwards nothing, so a host's
default route through it leads nowhere outside these namespaces. Every name
starts with ``crl-`` and ``cleanup`` removes them all, whatever state a
failed test left them in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nodeagent.network.nsthread import acall_in_netns, write_sysctl
from nodeagent.network.rtnl import link_index, rtnl

UNDERLAY_CIDR = "192.168.240.0/24"
UNDERLAY_BRIDGE = "crlu0"
UNDERLAY_GATEWAY = "192.168.240.254"
NETNS_DIR = Path("/run/netns")
# `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc, which gives a
# simulated pod its own resolv.conf.
ETC_NETNS = Path("/etc/netns")


class CommandFailed(Exception):
    pass


async def run(*argv: str, check: bool = True) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if check and process.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)}: {stderr.decode(errors='replace').strip()}")
    return stdout.decode()


def netns_path(name: str) -> str:
    return str(NETNS_DIR / name)


def namespaces() -> set[str]:
    try:
        return {entry.name for entry in NETNS_DIR.iterdir()}
    except FileNotFoundError:
        return set()


def root_links() -> set[str]:
    """Link names of this process's own namespace, for before/after leak checks."""
    return {entry.name for entry in Path("/sys/class/net").iterdir()}


async def add_netns(name: str) -> str:
    """A new, empty namespace (loopback up); its path."""
    if not name.startswith("crl-"):
        raise ValueError(f"test namespaces are named crl-*, not {name!r}")
    await run("ip", "netns", "add", name)
    async with rtnl(netns_path(name)) as ipr:
        lo = await link_index(ipr, "lo")
        await ipr.link("set", index=lo, state="up")
    return netns_path(name)


async def delete_netns(name: str) -> None:
    """Remove a namespace and its /etc/netns directory, if present."""
    if name in namespaces():
        await run("ip", "netns", "delete", name, check=False)
    _remove_etc(name)


def _remove_etc(name: str) -> None:
    # Absent is removed: the namespace may never have had a resolv.conf.
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(ETC_NETNS / name)
        # write_resolv_conf may have made /etc/netns itself; only if empty.
        with contextlib.suppress(OSError):
            ETC_NETNS.rmdir()


def write_resolv_conf(name: str, text: str) -> None:
    directory = ETC_NETNS / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resolv.conf").write_text(text)


@dataclass
class SimHost:
    name: str  # its namespace
    ip: str  # on the underlay

    @property
    def path(self) -> str:
        return netns_path(self.name)


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class, despite the name

    underlay: str
    hosts: list[SimHost] = field(default_factory=list)

    def names(self) -> list[str]:
        return [self.underlay, *(host.name for host in self.hosts)]


def has_br_netfilter() -> bool:
    return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists()


async def create_hosts(count: int, prefix: str = "crl-host", br_netfilter: bool = False) -> Testbed:
    """``count`` host namespaces ``{prefix}-0..`` joined by the underlay ``{prefix}-ul``.

    ``br_netfilter`` says whether bridged frames pass the IP hooks in the
    hosts (a per-namespace setting, where the module is loaded): off shows
    the data plane needs none of it, on that it copes with it.
    """
    if not prefix.startswith("crl-"):
        raise ValueError(f"testbed names start with crl-, not {prefix!r}")
    if not 1 <= count <= 200:
        raise ValueError("between 1 and 200 hosts")
    underlay = f"{prefix}-ul"
    bed = Testbed(underlay)
    network = ipaddress.IPv4Network(UNDERLAY_CIDR)
    try:
        await add_netns(underlay)
        await acall_in_netns(
            netns_path(underlay), lambda: write_sysctl("", "net.ipv4.ip_forward", "0")
        )
        async with rtnl(netns_path(underlay)) as ul:
            await ul.link("add", ifname=UNDERLAY_BRIDGE, kind="bridge")
            bridge = await link_index(ul, UNDERLAY_BRIDGE)
            await ul.addr("add", index=bridge, address=UNDERLAY_GATEWAY, prefixlen=24)
            await ul.link("set", index=bridge, state="up")
            for number in range(count):
                host = SimHost(f"{prefix}-{number}", str(network[number + 1]))
                await add_netns(host.name)
                bed.hosts.append(host)
                if has_br_netfilter():
                    await acall_in_netns(
                        host.path,
                        lambda: write_sysctl(
                            "", "net.bridge.bridge-nf-call-iptables", str(int(br_netfilter))
                        ),
                    )
                port = f"crlu-{number}"
                await ul.link(
                    "add",
                    ifname=port,
                    kind="veth",
                    peer={"ifname": "eth0", "net_ns_fd": host.path},
                )
                index = await link_index(ul, port)
                await ul.link("set", index=index, master=bridge, state="up")
                async with rtnl(host.path) as ipr:
                    eth0 = await link_index(ipr, "eth0")
                    await ipr.addr("add", index=eth0, address=host.ip, prefixlen=24)
                    await ipr.link("set", index=eth0, state="up")
                    await ipr.route("add", dst="0.0.0.0/0", gateway=UNDERLAY_GATEWAY)
    except BaseException:
        await cleanup(bed)
        raise
    return bed


async def cleanup(bed: Testbed | None = None, prefix: str = "crl-host") -> None:
    """Remove the testbed's namespaces (and with them every link inside). Idempotent."""
    names = set(bed.names()) if bed is not None else set()
    names |= {name for name in namespaces() if name.startswith(f"{prefix}-")}
    for name in sorted(names):
        await delete_netns(name)


# --- simulated pods: a namespace, a tiny HTTP server, and clients ---------------------------

# Answers every GET with "<name> <client address>", so a test sees both which
# backend answered and the source address that backend saw.
_HTTP_SERVER = """
import http.server, sys
name, port = sys.argv[1], int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {self.client_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
print("ready", flush=True)
server.serve_forever()
"""


async def start_http_server(
    netns: str, name: str, port: int = 8080, python: str = sys.executable
) -> asyncio.subprocess.Process:
    """An HTTP server inside ``netns``, returned once it listens; stop it with ``stop``."""
    process = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        netns,
        python,
        "-c",
        _HTTP_SERVER,
        name,
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = await process.stdout.readline()
    except BaseException:
        await stop(process)
        raise
    if line.strip() != b"ready":
        await stop(process)
        raise CommandFailed(f"HTTP server in {netns} did not start")
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile: nothing to kill
            process.kill()
        await process.wait()


async def http_get(netns: str, ip: str, port: int, timeout: float = 3.0) -> str:
    """GET / from inside ``netns`` (a socket created there); the response body."""
    sock = await acall_in_netns(
        netns_path(netns), lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    )
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (ip, port))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
            await writer.drain()
            response = await reader.read()
            writer.close()
    finally:
        sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise CommandFailed(f"GET http://{ip}:{port}/ from {netns}: {head[:60]!r}")
    return body.decode()


async def connect_error(netns: str, ip: str, port: int, timeout: float = 3.0) -> int | None:
    """The errno a TCP connect from ``netns`` fails with (None if it connects)."""
    sock = await acall_in_netns(
        netns_path(netns), lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    )
    sock.setblocking(False)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (ip, port))
    except TimeoutError:
        return errno.ETIMEDOUT  # black-holed
    except OSError as error:
        return error.errno
    finally:
        sock.close()
    return None
