"""Sockets inside another network namespace, without forking.

``setns(2)`` moves only the calling thread, and a socket stays in the
namespace it was created in; so a short-lived thread switches in, opens the
socket, switches back, and hands the socket to the event loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def socket_in(
    netns_path: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A new, non-blocking socket in the namespace at ``netns_path`` ('' = this one)."""
    if not netns_path:
        sock = socket.socket(family, kind)
        sock.setblocking(False)
        return sock
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        target = os.open(netns_path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                sock = socket.socket(family, kind)
                sock.setblocking(False)
                result.append(sock)
            finally:
                _setns(own)
        except BaseException as error:
            result.append(error)
        finally:
            os.close(target)
            os.close(own)

    # A thread of its own, never a pooled one: if switching back ever failed,
    # the stranded thread ends here instead of serving other work in the pod's
    # namespace.
    thread = threading.Thread(target=work, name="netns-socket", daemon=True)
    thread.start()
    thread.join()
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
