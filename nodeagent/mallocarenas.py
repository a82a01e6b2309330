"""Fewer malloc arenas for the agent: its memory, not its speed, is what they cost.

glibc gives each thread that allocates concurrently an arena of its own, up
to eight per core, and an arena keeps what was freed in it. The agent runs
its Docker calls on a pool of threads, and gRPC has threads of its own:
every one of them ends up holding its own arena's leftovers, which is much
of the agent's resident memory with a hundred pods. Two arenas are plenty
for threads that mostly wait on sockets.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's malloc.h
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's arenas, before threads start; False where libc is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        # musl and others have no mallopt (nor glibc's per-thread arenas).
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_ARENA_MAX, arenas))
    if not done:
        log.debug("mallopt(M_ARENA_MAX, %d) was refused", arenas)
    return done
