"""corral.objects: every accessor reads a missing, null or malformed section as empty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from corral.objects import (
    Obj,
    annotations_of,
    labels_of,
    meta,
    name_of,
    namespace_of,
    owner_references,
    parse_time,
    spec,
    status,
    uid_of,
)

POD: Obj = {
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "uid": "u-1",
        "labels": {"app": "web"},
        "annotations": {"note": "x"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "u-0"}],
    },
    "spec": {"nodeName": "n1"},
    "status": {"phase": "Running"},
}


def test_accessors_read_the_objects_own_sections() -> None:
    assert meta(POD) is POD["metadata"]
    assert spec(POD) is POD["spec"]
    assert status(POD) is POD["status"]
    assert name_of(POD) == "web-1"
    assert namespace_of(POD) == "shop"
    assert uid_of(POD) == "u-1"
    assert labels_of(POD) == {"app": "web"}
    assert annotations_of(POD) == {"note": "x"}
    assert owner_references(POD) == [{"kind": "ReplicaSet", "name": "web", "uid": "u-0"}]


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"metadata": None, "spec": None, "status": None},
        {"metadata": "garbage", "spec": ["garbage"], "status": 3},
        {"metadata": {"labels": None, "annotations": None, "ownerReferences": None}},
    ],
)
def test_accessors_read_what_is_missing_as_empty(obj: Obj) -> None:
    written = obj.get("metadata")
    assert meta(obj) == (written if isinstance(written, dict) else {})
    assert spec(obj) == {}
    assert status(obj) == {}
    assert (name_of(obj), namespace_of(obj), uid_of(obj)) == ("", "", "")
    assert labels_of(obj) == {}
    assert annotations_of(obj) == {}
    assert owner_references(obj) == []


def test_a_missing_section_is_a_fresh_dict_that_belongs_to_nobody() -> None:
    obj: Obj = {}
    meta(obj)["name"] = "lost"
    assert obj == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.250000Z", datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
        (
            "2026-01-02T05:04:05+02:00",
            datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("", None),
        (None, None),
        (1767323045, None),
        ("yesterday", None),
    ],
)
def test_parse_time(text: object, expected: datetime | None) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None
