"""uvicorn's server settings, with corral's TLS policy on the HTTPS context."""

from __future__ import annotations

import uvicorn

from corral import tlspolicy


class PolicyConfig(uvicorn.Config):
    """uvicorn.Config whose SSL context speaks only TLS 1.2+ with AEAD ciphers.

    uvicorn takes a cipher string but no minimum version; the context it
    builds in load() is narrowed here, before the server listens with it.
    """

    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            tlspolicy.apply(self.ssl)
