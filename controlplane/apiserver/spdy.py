"""SPDY/3 framing, as much of it as a port-forward server needs.

kubectl (client-go's spdystream) speaks SPDY/3 for port-forward; from 1.31
on it first tunnels it through a WebSocket (subprotocol
``SPDY/3.1+portforward.k8s.io``), which is how it reaches corral. The
client opens streams (SYN_STREAM with headers), sends DATA on them and
pings; the server answers each stream (SYN_REPLY), sends DATA, half-closes
with FIN, resets with RST_STREAM, and echoes pings. Header blocks are
zlib-compressed with one context per direction for the whole connection,
primed with SPDY's dictionary, so frames must be compressed in the order
they are sent.

Frame layout (big-endian): a control frame is ``1 | version(15) | type(16)
| flags(8) | length(24) | payload``; a data frame is ``0 | stream id(31) |
flags(8) | length(24) | data``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from controlplane.apiserver.spdydictionary import HEADER_DICTIONARY

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN = 0x01
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
MAX_DATA_LENGTH = (1 << 24) - 1
# A header block that inflates past this is refused: the client sends three
# short headers per stream, and a zlib bomb must not fill the API server.
MAX_HEADER_BLOCK = 64 * 1024


class SpdyError(Exception):
    """The peer broke the protocol: the connection ends."""


@dataclass(frozen=True)
class ControlFrame:
    kind: int
    flags: int
    payload: bytes


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    flags: int
    headers: dict[str, str]

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class Framer:
    """Bytes in, frames out; frames in, bytes out. One per connection."""

    _pending: bytearray = field(default_factory=bytearray)
    _inflate: zlib._Decompress = field(
        default_factory=lambda: zlib.decompressobj(zdict=HEADER_DICTIONARY)
    )
    _deflate: zlib._Compress = field(
        default_factory=lambda: zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=HEADER_DICTIONARY)
    )

    def feed(self, data: bytes) -> list[ControlFrame | DataFrame]:
        """The whole frames the bytes so far complete (a frame may span messages)."""
        self._pending += data
        frames: list[ControlFrame | DataFrame] = []
        while len(self._pending) >= 8:
            first, second = struct.unpack_from(">II", self._pending)
            length = second & 0xFFFFFF
            if len(self._pending) < 8 + length:
                break
            payload = bytes(self._pending[8 : 8 + length])
            del self._pending[: 8 + length]
            flags = second >> 24
            if first & 0x80000000:
                frames.append(ControlFrame(first & 0xFFFF, flags, payload))
            else:
                frames.append(DataFrame(first & 0x7FFFFFFF, flags, payload))
        return frames

    def syn_stream(self, frame: ControlFrame) -> SynStream:
        if len(frame.payload) < 10:
            raise SpdyError("a SYN_STREAM frame too short for its fields")
        (stream_id,) = struct.unpack_from(">I", frame.payload)
        return SynStream(stream_id & 0x7FFFFFFF, frame.flags, self._headers(frame.payload[10:]))

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as error:
            raise SpdyError(f"a header block does not inflate: {error}") from None
        if self._inflate.unconsumed_tail:
            raise SpdyError("a header block larger than the server accepts")
        return parse_header_block(raw)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None) -> bytes:
        block = encode_header_block(headers or {})
        compressed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return _control(SYN_REPLY, 0, struct.pack(">I", stream_id) + compressed)

    @staticmethod
    def data(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        return _data(stream_id, data, FLAG_FIN if fin else 0)

    @staticmethod
    def rst_stream(stream_id: int, status: int) -> bytes:
        return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    @staticmethod
    def ping(payload: bytes) -> bytes:
        return _control(PING, 0, payload[:4])

    @staticmethod
    def goaway(last_stream_id: int, status: int = 0) -> bytes:
        return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def _data(stream_id: int, data: bytes, flags: int) -> bytes:
    frames = []
    # One frame's length field holds 24 bits; longer data goes in several.
    for offset in range(0, max(len(data), 1), MAX_DATA_LENGTH):
        chunk = data[offset : offset + MAX_DATA_LENGTH]
        last = offset + MAX_DATA_LENGTH >= len(data)
        frame_flags = flags if last else 0
        frames.append(struct.pack(">II", stream_id, (frame_flags << 24) | len(chunk)) + chunk)
    return b"".join(frames)


def parse_header_block(raw: bytes) -> dict[str, str]:
    """``count | (name length | name | value length | value)*``, names lower-cased."""
    try:
        (count,) = struct.unpack_from(">I", raw)
        offset, headers = 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", raw, offset)
            name = raw[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            (size,) = struct.unpack_from(">I", raw, offset)
            value = raw[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            headers[name.lower()] = value
    except (struct.error, UnicodeDecodeError) as error:
        raise SpdyError(f"a malformed header block: {error}") from None
    return headers


def encode_header_block(headers: dict[str, str]) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        for text in (name.lower(), value):
            encoded = text.encode()
            parts.append(struct.pack(">I", len(encoded)) + encoded)
    return b"".join(parts)
