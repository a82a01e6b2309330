"""The WebSocket channel protocols and SPDY/3 framing that exec and port-forward speak."""

from __future__ import annotations

import struct
import zlib

import pytest

from controlplane.apiserver import spdy
from controlplane.apiserver.channels import (
    EXEC_PROTOCOLS,
    PORT_FORWARD_PROTOCOLS,
    negotiate,
    offered_protocols,
)
from controlplane.apiserver.spdydictionary import HEADER_DICTIONARY


def _protocol(name: str) -> object:
    found = negotiate([name], EXEC_PROTOCOLS)
    assert found is not None
    return found


def test_the_client_s_first_choice_wins_and_unknown_ones_are_refused() -> None:
    offered = offered_protocols("v4.channel.k8s.io, v5.channel.k8s.io")
    chosen = negotiate(offered, EXEC_PROTOCOLS)
    assert chosen is not None and chosen.name == "v4.channel.k8s.io"
    assert negotiate(["v9.channel.k8s.io"], EXEC_PROTOCOLS) is None
    unnamed = negotiate([], EXEC_PROTOCOLS)
    assert unnamed is not None and unnamed.name == "" and not unnamed.text
    # v5 adds nothing to port-forward; the kubelet does not offer it there.
    assert negotiate(["v5.channel.k8s.io"], PORT_FORWARD_PROTOCOLS) is None


def test_binary_framing_reads_text_messages_as_bytes_too() -> None:
    v5 = negotiate(["v5.channel.k8s.io"], EXEC_PROTOCOLS)
    assert v5 is not None
    assert v5.encode(1, b"out") == b"\x01out"
    assert v5.decode(b"\x00in") == (0, b"in")
    # The Python client sends str stdin as a text message, channel byte first.
    assert v5.decode("\x00ping\n") == (0, b"ping\n")
    assert v5.decode(b"") is None


def test_base64_framing() -> None:
    b64 = negotiate(["v4.base64.channel.k8s.io"], EXEC_PROTOCOLS)
    assert b64 is not None and b64.text and b64.status_as_json
    assert b64.encode(2, b"\xffoops") == "2/29vcHM="
    assert b64.decode("0aGk=") == (0, b"hi")
    assert b64.decode(b"0aGk=") == (0, b"hi")
    assert b64.decode("0not base64!") is None
    assert b64.decode("xaGk=") is None


def _client_compressor() -> zlib._Compress:
    return zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=HEADER_DICTIONARY)


def _syn_stream(compressor: zlib._Compress, stream_id: int, headers: dict[str, str]) -> bytes:
    block = spdy.encode_header_block(headers)
    compressed = compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = struct.pack(">IIH", stream_id, 0, 0) + compressed
    return struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(payload)) + payload


def test_spdy_streams_open_across_messages_and_share_one_compression_context() -> None:
    framer = spdy.Framer()
    client = _client_compressor()
    first = _syn_stream(client, 1, {"streamType": "error", "port": "80", "requestID": "0"})
    second = _syn_stream(client, 3, {"streamType": "data", "port": "80", "requestID": "0"})
    wire = first + second + spdy.Framer.data(3, b"GET /", fin=True)
    # Split mid-frame: the tunnel's messages need not follow frame boundaries.
    frames = framer.feed(wire[:5]) + framer.feed(wire[5:40]) + framer.feed(wire[40:])
    assert [type(f).__name__ for f in frames] == ["ControlFrame", "ControlFrame", "DataFrame"]
    opened = [framer.syn_stream(f) for f in frames[:2] if isinstance(f, spdy.ControlFrame)]
    assert [(s.stream_id, s.headers["streamtype"]) for s in opened] == [(1, "error"), (3, "data")]
    data = frames[2]
    assert isinstance(data, spdy.DataFrame) and data.data == b"GET /" and data.fin


def test_spdy_replies_inflate_with_the_dictionary_in_send_order() -> None:
    framer = spdy.Framer()
    replies = [framer.syn_reply(1), framer.syn_reply(3)]
    inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
    for stream_id, reply in zip((1, 3), replies, strict=True):
        first, second = struct.unpack_from(">II", reply)
        assert first == 0x80030000 | spdy.SYN_REPLY
        assert second & 0xFFFFFF == len(reply) - 8
        assert struct.unpack_from(">I", reply, 8)[0] == stream_id
        assert spdy.parse_header_block(inflate.decompress(reply[12:])) == {}


def test_a_spdy_header_bomb_is_refused() -> None:
    framer = spdy.Framer()
    client = _client_compressor()
    huge = _syn_stream(client, 1, {"x": "a" * (spdy.MAX_HEADER_BLOCK * 2)})
    (frame,) = framer.feed(huge)
    assert isinstance(frame, spdy.ControlFrame)
    with pytest.raises(spdy.SpdyError):
        framer.syn_stream(frame)
