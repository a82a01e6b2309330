"""Run a short function inside another network namespace, without forking.

``setns(2)`` moves only the calling thread, so a thread of its own switches
in, does the work and switches back. pyroute2 would fork a child to open a
netlink socket in a namespace; a fork from the agent (grpcio and Docker's
threads running) is unsafe and costs milliseconds, and a netlink socket, like
any socket, stays in the namespace it was created in.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _switched(netns_path: str, work: Callable[[], T]) -> T:
    """``work()`` on the calling thread, switched into ``netns_path`` and back."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns_path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            return work()
        finally:
            _setns(own)
    finally:
        os.close(own)


def call_in_netns(netns_path: str, work: Callable[[], T]) -> T:
    """``work()`` on a dedicated thread inside ``netns_path`` ('' = this namespace)."""
    if not netns_path:
        return work()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(_switched(netns_path, work))
        except BaseException as error:
            failure.append(error)

    # Never a pooled thread: if switching back failed, the stranded thread
    # ends here instead of serving other work in the wrong namespace.
    thread = threading.Thread(target=run, name="netns-call", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


async def acall_in_netns(netns_path: str, work: Callable[[], T]) -> T:
    """``call_in_netns`` that awaits the thread instead of blocking the event loop."""
    if not netns_path:
        return work()
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def succeed(result: T) -> None:
        if not future.done():
            future.set_result(result)

    def fail(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        try:
            result = _switched(netns_path, work)
        except BaseException as error:
            loop.call_soon_threadsafe(fail, error)
        else:
            loop.call_soon_threadsafe(succeed, result)

    threading.Thread(target=run, name="netns-acall", daemon=True).start()
    return await future


def netlink_socket_in(netns_path: str) -> socket.socket:
    """An rtnetlink socket created inside ``netns_path``, for pyroute2's ``fileno``."""
    return call_in_netns(netns_path, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0))


def write_sysctl(netns_path: str, key: str, value: str) -> None:
    """Set a sysctl such as ``net.ipv4.ip_forward`` as seen from ``netns_path``.

    /proc/sys/net resolves against the calling thread's namespace, so the
    write happens on the switched thread.
    """
    path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(path, "w") as handle:
            handle.write(value)

    call_in_netns(netns_path, write)


def read_sysctl(netns_path: str, key: str) -> str:
    path = "/proc/sys/" + key.replace(".", "/")

    def read() -> str:
        with open(path) as handle:
            return handle.read().strip()

    return call_in_netns(netns_path, read)
