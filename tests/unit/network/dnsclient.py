"""A tiny DNS client side for tests: build queries, read answers."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from nodeagent.network.dnswire import OPT, A, encode_name, read_name


def query(name: str, qtype: int = A, ident: int = 0x1234, edns: int | None = None) -> bytes:
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 1 if edns else 0)
    question = encode_name(name) + struct.pack("!HH", qtype, 1)
    opt = b"\x00" + struct.pack("!HHIH", OPT, edns, 0, 0) if edns else b""
    return header + question + opt


@dataclass
class Reply:
    ident: int
    flags: int
    rcode: int
    question: str
    answers: list[tuple[str, int, bytes]]  # name, type, rdata
    authority: int
    additional: int

    @property
    def truncated(self) -> bool:
        return bool(self.flags & 0x0200)

    @property
    def authoritative(self) -> bool:
        return bool(self.flags & 0x0400)

    def a(self) -> list[str]:
        return [socket.inet_ntoa(rdata) for _, rtype, rdata in self.answers if rtype == A]


def parse(data: bytes) -> Reply:
    ident, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    offset = 12
    question = ""
    for _ in range(qd):
        question, offset = read_name(data, offset)
        offset += 4
    answers = []
    for _ in range(an):
        name, offset = read_name(data, offset)
        rtype, _, _, size = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        answers.append((name, rtype, data[offset : offset + size]))
        offset += size
    return Reply(ident, flags, flags & 0xF, question, answers, ns, ar)
