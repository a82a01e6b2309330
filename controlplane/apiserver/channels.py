"""Kubernetes' WebSocket channel protocols: which one a client gets, and their framing.

Every message carries one channel's bytes. In the binary protocols the first
byte is the channel number; in the base64 ones (text messages, for browsers)
it is the channel's digit ``'0'..'9'`` and the rest is base64. The versions
differ in what they carry besides (kube-apiserver 1.32 with the kubelet's
streaming server):

- ``channel.k8s.io``, ``base64.channel.k8s.io`` (and no subprotocol at all):
  the error channel (3) carries a failure's message as plain text;
- ``v4.channel.k8s.io``, ``v4.base64.channel.k8s.io``: the error channel
  carries a JSON ``Status`` (success too);
- ``v5.channel.k8s.io``: v4, plus channel 255 by which a client closes a
  channel (``[255, 0]``: end of stdin) while still reading the others.

In all of them channel 4 takes terminal sizes (``{"Width": 80, "Height": 24}``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


@dataclass(frozen=True)
class ChannelProtocol:
    name: str  # '' when the client asked for none
    version: int  # 1 (channel.k8s.io), 4 or 5
    text: bool  # base64 in text messages

    @property
    def status_as_json(self) -> bool:
        return self.version >= 4

    def encode(self, channel: int, data: bytes) -> bytes | str:
        if self.text:
            return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
        return bytes([channel]) + data

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        """(channel, bytes) of a client's message; None for an empty or malformed one."""
        # The framing follows the protocol, not the message's type: the Python
        # client writes stdin given as str in text messages, channel byte and
        # all, even on a binary protocol (the Go servers read both alike).
        if not message:
            return None
        if not self.text:
            raw = message.encode() if isinstance(message, str) else message
            return raw[0], raw[1:]
        try:
            text = message if isinstance(message, str) else message.decode("ascii")
            channel = ord(text[0]) - ord("0")
            if not 0 <= channel <= 9:
                return None
            return channel, base64.b64decode(text[1:], validate=True)
        except (binascii.Error, UnicodeDecodeError):
            return None


EXEC_PROTOCOLS = (
    ChannelProtocol("v5.channel.k8s.io", 5, False),
    ChannelProtocol("v4.channel.k8s.io", 4, False),
    ChannelProtocol("v4.base64.channel.k8s.io", 4, True),
    ChannelProtocol("channel.k8s.io", 1, False),
    ChannelProtocol("base64.channel.k8s.io", 1, True),
)

# Port-forward's channels are two per port (data, then error), each opened
# by the server with the port number; v5 adds nothing there, so it is not
# offered, as the kubelet does not.
PORT_FORWARD_PROTOCOLS = (
    ChannelProtocol("v4.channel.k8s.io", 4, False),
    ChannelProtocol("v4.base64.channel.k8s.io", 4, True),
    ChannelProtocol("channel.k8s.io", 1, False),
    ChannelProtocol("base64.channel.k8s.io", 1, True),
)

_NONE_ASKED = ChannelProtocol("", 1, False)


def offered_protocols(header: str) -> list[str]:
    return [p.strip() for p in header.split(",") if p.strip()]


def negotiate(offered: list[str], supported: tuple[ChannelProtocol, ...]) -> ChannelProtocol | None:
    """The protocol to answer with: the client's first choice we speak.

    A client that names no protocol gets the original binary framing, with
    no subprotocol in the answer (wsstream's ``""`` entry); one that names
    only protocols we do not speak gets None (and a refusal).
    """
    if not offered:
        return _NONE_ASKED
    by_name = {p.name: p for p in supported}
    return next((by_name[name] for name in offered if name in by_name), None)
