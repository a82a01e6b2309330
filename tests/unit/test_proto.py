"""The committed gRPC code is what proto/ generates today."""

from __future__ import annotations

from corral.proto.generate import generated_matches


def test_generated_code_is_current() -> None:
    assert generated_matches() == [], "run: python -m corral.proto.generate"
