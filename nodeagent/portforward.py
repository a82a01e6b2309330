"""Port-forward: one TCP connection to a port on a pod's loopback, relayed as a byte stream.

As the kubelet does, the agent dials 127.0.0.1:PORT inside the pod's own
network namespace (the infra container's), so a forwarded port reaches what
the pod listens on, even on loopback only, and nothing outside the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from nodeagent.netns import socket_in

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
CHUNK_BYTES = 64 * 1024


class ForwardRefused(Exception):
    """The pod's port could not be reached; the message says why, as kubelet words it."""


async def connect_in_pod(
    netns_path: str, port: int, *, timeout: float = CONNECT_TIMEOUT_SECONDS
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to 127.0.0.1:``port`` inside the namespace at ``netns_path``."""
    # socket_in switches a thread of its own into the namespace and joins it.
    sock = await asyncio.to_thread(socket_in, netns_path)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, ("127.0.0.1", port))
    except (OSError, TimeoutError) as error:
        sock.close()
        if isinstance(error, OSError) and error.errno:
            reason = os.strerror(error.errno).lower()
        else:
            reason = "timed out"
        raise ForwardRefused(
            f"failed to connect to localhost:{port} inside the pod's network namespace: {reason}"
        ) from None
    return await asyncio.open_connection(sock=sock)


async def relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    incoming: AsyncIterator[bytes],
) -> AsyncIterator[bytes]:
    """What the pod sends, chunk by chunk, while ``incoming`` is written to it.

    The end of ``incoming`` half-closes the connection (the client is done
    sending, and may still read the answer); the pod closing its side ends
    the relay.
    """

    async def pump() -> None:
        async for data in incoming:
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    feeder = asyncio.create_task(pump())
    try:
        while True:
            data = await reader.read(CHUNK_BYTES)
            if not data:
                return
            yield data
    finally:
        feeder.cancel()
        # The cancellation asked for above, or the caller's stream breaking:
        # either way the connection is closed next and nothing is lost.
        (outcome,) = await asyncio.gather(feeder, return_exceptions=True)
        if isinstance(outcome, Exception):
            log.info("port-forward: the caller's stream broke: %s", outcome)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
