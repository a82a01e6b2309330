"""The one TLS policy every corral HTTPS endpoint and client uses.

TLS 1.2 or newer, and with TLS 1.2 only ECDHE key exchange (forward secrecy)
with an AEAD cipher: AES-GCM or ChaCha20-Poly1305. CBC suites (Lucky13,
POODLE-style padding oracles), RSA key exchange (no forward secrecy), RC4,
3DES and everything before TLS 1.2 are refused. TLS 1.3's suites are all
AEAD and OpenSSL configures them apart from this list, so they stay on.
This is Mozilla's "intermediate" profile, which every client corral expects
(kubectl, client-go, browsers, Python's ssl) speaks.

gRPC (the API server's agent API and the node agents) uses its own
BoringSSL, whose defaults already match: TLS 1.2 minimum and ECDHE with
AES-GCM only. grpcio offers no per-server setting, so those stay the default.
"""

from __future__ import annotations

import ssl

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2

# OpenSSL names for TLS 1.2; ECDSA first, as a key of either type may serve.
AEAD_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)


def apply(context: ssl.SSLContext) -> ssl.SSLContext:
    """Restrict ``context`` to the policy, in place; returned for chaining."""
    context.minimum_version = MINIMUM_VERSION
    context.set_ciphers(AEAD_CIPHERS)
    return context
