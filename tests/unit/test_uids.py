"""new_uid: RFC 4122 version 4 text, as uuid.uuid4() writes it, never repeated."""

from __future__ import annotations

import re
import uuid

from corral.uids import new_uid

_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_version_4_text() -> None:
    uids = [new_uid() for _ in range(2000)]
    assert len(set(uids)) == len(uids)
    for text in uids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text and _TEXT.match(text)
