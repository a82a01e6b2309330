"""The DNS wire format, as much of it as an authoritative A-record server needs (RFC 1035,
with EDNS0's payload size from RFC 6891). Queries are parsed strictly; anything malformed
is a FormatError, never a crash.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

A, NS, CNAME, SOA, PTR, AAAA, SRV, OPT, ANY = 1, 2, 5, 6, 12, 28, 33, 41, 255
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100
_HEADER = struct.Struct("!HHHHHH")
_CLASSIC_UDP = 512
OUR_UDP_SIZE = 1232  # the DNS flag day's safe EDNS size: no IP fragmentation
_MAX_NAME = 255


class FormatError(Exception):
    pass


@dataclass(frozen=True)
class Question:
    name: str  # lower case, no trailing dot; "" is the root
    qtype: int
    qclass: int


@dataclass
class Query:
    id: int
    flags: int
    question: Question | None
    raw_question: bytes  # echoed as sent, so 0x20 case randomisation survives
    udp_size: int = _CLASSIC_UDP
    edns: bool = False

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


@dataclass(frozen=True)
class Record:
    name: bytes  # already encoded (possibly a compression pointer)
    rtype: int
    ttl: int
    rdata: bytes

    def encode(self) -> bytes:
        fixed = struct.pack("!HHIH", self.rtype, CLASS_IN, self.ttl, len(self.rdata))
        return self.name + fixed + self.rdata


@dataclass
class Response:
    rcode: int
    answers: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    authoritative: bool = True


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.split(".") if name else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    out += b"\x00"
    if len(out) > _MAX_NAME:
        raise ValueError(f"name too long: {name!r}")
    return bytes(out)


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset after it (following compression pointers)."""
    labels: list[str] = []
    end = -1
    jumps = 0
    length = 0
    while True:
        if offset >= len(data):
            raise FormatError("name runs past the message")
        size = data[offset]
        if size & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise FormatError("truncated pointer")
            jumps += 1
            if jumps > 32:
                raise FormatError("pointer loop")
            if end < 0:
                end = offset + 2
            offset = ((size & 0x3F) << 8) | data[offset + 1]
            continue
        if size & 0xC0:
            raise FormatError("unsupported label type")
        offset += 1
        if size == 0:
            break
        if offset + size > len(data):
            raise FormatError("label runs past the message")
        length += size + 1
        if length > _MAX_NAME:
            raise FormatError("name too long")
        labels.append(data[offset : offset + size].decode("latin-1").lower())
        offset += size
    return ".".join(labels), (end if end >= 0 else offset)


def _skip_record(data: bytes, offset: int) -> tuple[int, int, int]:
    """Skips one resource record: (type, class, offset after it)."""
    _, offset = read_name(data, offset)
    if offset + 10 > len(data):
        raise FormatError("truncated record")
    rtype, rclass, _, size = struct.unpack_from("!HHIH", data, offset)
    offset += 10 + size
    if offset > len(data):
        raise FormatError("record data runs past the message")
    return rtype, rclass, offset


def parse_query(data: bytes) -> Query:
    if len(data) < _HEADER.size:
        raise FormatError("shorter than a header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & _QR:
        raise FormatError("a response, not a query")
    if qdcount != 1:
        return Query(ident, flags, None, b"")
    name, offset = read_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise FormatError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    offset += 4
    query = Query(ident, flags, Question(name, qtype, qclass), data[_HEADER.size : offset])
    for _ in range(ancount + nscount):
        _, _, offset = _skip_record(data, offset)
    for _ in range(arcount):
        start = offset
        rtype, rclass, offset = _skip_record(data, offset)
        if rtype == OPT and data[start] == 0:
            query.edns = True
            query.udp_size = max(_CLASSIC_UDP, min(rclass, 65535))
    return query


def parse_answers(message: bytes) -> tuple[int, list[Record]]:
    """A reply's rcode and answer records, names decompressed so they can be re-sent."""
    if len(message) < _HEADER.size:
        raise FormatError("shorter than a header")
    _, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(message)
    offset = _HEADER.size
    for _ in range(qdcount):
        _, offset = read_name(message, offset)
        offset += 4
    records: list[Record] = []
    for _ in range(ancount):
        owner, offset = read_name(message, offset)
        if offset + 10 > len(message):
            raise FormatError("truncated record")
        rtype, _, ttl, size = struct.unpack_from("!HHIH", message, offset)
        offset += 10
        if offset + size > len(message):
            raise FormatError("record data runs past the message")
        rdata = message[offset : offset + size]
        if rtype in (CNAME, PTR, NS):
            rdata = encode_name(read_name(message, offset)[0])
        records.append(Record(encode_name(owner), rtype, ttl, rdata))
        offset += size
    return flags & 0xF, records


def build_query(name: str, qtype: int, ident: int) -> bytes:
    """A recursive query for ``name`` (what the server asks upstream on a client's behalf)."""
    return _HEADER.pack(ident, _RD, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, 1)


def header_only(data: bytes, rcode: int) -> bytes | None:
    """A bare error reply to a message we could not parse, if it has an ID to answer."""
    if len(data) < 4:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & _QR:
        return None
    return _HEADER.pack(ident, _QR | (flags & 0x7900) | rcode, 0, 0, 0, 0)


def encode_response(query: Query, response: Response, limit: int) -> bytes:
    """The reply; answers that do not fit ``limit`` bytes are dropped and TC is set."""
    flags = _QR | (query.flags & (0x7800 | _RD)) | response.rcode
    if response.authoritative:
        flags |= _AA
    question = query.raw_question
    qdcount = 1 if question else 0
    opt = b"\x00" + struct.pack("!HHIH", OPT, OUR_UDP_SIZE, 0, 0) if query.edns else b""
    body = bytearray(question)
    room = limit - _HEADER.size - len(question) - len(opt)
    answers = 0
    truncated = False
    for record in response.answers:
        encoded = record.encode()
        if len(encoded) > room:
            truncated = True
            break
        body += encoded
        room -= len(encoded)
        answers += 1
    authority = 0
    if not truncated:
        for record in response.authority:
            encoded = record.encode()
            if len(encoded) > room:
                break
            body += encoded
            room -= len(encoded)
            authority += 1
    if truncated:
        flags |= _TC
    header = _HEADER.pack(query.id, flags, qdcount, answers, authority, 1 if opt else 0)
    return header + bytes(body) + opt


# The question's name always sits right after the header.
QUESTION_NAME = b"\xc0\x0c"


def a_rdata(ip: str) -> bytes:
    return socket.inet_aton(ip)


def srv_rdata(priority: int, weight: int, port: int, target: str) -> bytes:
    # RFC 2782: the target is never compressed.
    return struct.pack("!HHH", priority, weight, port) + encode_name(target)


def reverse_name(ip: str) -> str:
    """The in-addr.arpa name of an IPv4 address: 10.0.0.1 -> 1.0.0.10.in-addr.arpa."""
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def soa_rdata(zone: str, serial: int, negative_ttl: int) -> bytes:
    return (
        encode_name(f"ns.dns.{zone}")
        + encode_name(f"hostmaster.{zone}")
        + struct.pack("!IIIII", serial, 7200, 1800, 86400, negative_ttl)
    )
