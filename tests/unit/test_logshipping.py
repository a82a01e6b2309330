"""Log shipping's wire pieces: Docker's timestamped lines in, journal export format out."""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import orjson

from corralctl.logstore import StoreQuery, _lines, _matches
from nodeagent.logshipping import entry_fields, export_entry, export_field, parse_docker_line
from nodeagent.runtime.base import ContainerRecord


def test_docker_timestamps_are_parsed_to_nanoseconds() -> None:
    assert parse_docker_line(b"2026-12-07T06:31:40.123456789Z hello world") == (
        1796625100123456789,
        b"hello world",
    )
    # Docker trims trailing zeros of the fraction (RFC 3339 nano).
    assert parse_docker_line(b"2026-12-07T06:31:40.1Z x") == (1796625100100000000, b"x")
    assert parse_docker_line(b"2026-12-07T06:31:40Z ") == (1796625100000000000, b"")
    assert parse_docker_line(b"not a timestamp") is None


def test_export_format_is_binary_safe_for_newlines() -> None:
    assert export_field("MESSAGE", b"one line") == b"MESSAGE=one line\n"
    packed = export_field("MESSAGE", b"a\nb")
    assert packed == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n"


def test_an_entry_carries_the_pod_fields_and_one_label_field_each() -> None:
    record = ContainerRecord(
        id="c1", name="main", role="app", pod_uid="u1", pod_name="web-1",
        pod_namespace="shop", state="running", image="busybox", restart_count=2,
    )  # fmt: skip
    common = entry_fields(record, "node-a", {"app": "shop", "tier": "web"})
    entry = export_entry(common, 1796625100123456789, b"hello")
    assert entry.startswith(b"__REALTIME_TIMESTAMP=1796625100123456\n")
    assert entry.endswith(b"MESSAGE=hello\n\n")
    for field in (
        b"CORRAL_POD=web-1\n", b"CORRAL_NAMESPACE=shop\n", b"CORRAL_CONTAINER=main\n",
        b"CORRAL_NODE=node-a\n", b"CORRAL_RESTART_COUNT=2\n",
        b"CORRAL_LABEL=app=shop\n", b"CORRAL_LABEL=tier=web\n",
    ):  # fmt: skip
        assert field in entry


def test_one_label_equality_becomes_a_journal_match() -> None:
    query = StoreQuery(namespace="shop", selector="tier!=db,app=shop")
    assert _matches(query) == ["CORRAL_NAMESPACE=shop", "CORRAL_LABEL=app=shop"]


def test_the_whole_selector_and_grep_filter_journal_entries() -> None:
    def entry(pod: str, labels: list[str] | str, text: str, ts: int) -> bytes:
        return orjson.dumps(
            {"CORRAL_POD": pod, "CORRAL_NAMESPACE": "shop", "CORRAL_CONTAINER": "main",
             "CORRAL_LABEL": labels, "MESSAGE": text, "__REALTIME_TIMESTAMP": str(ts)}
        )  # fmt: skip

    output = b"\n".join(
        [
            entry("web-1", ["app=shop", "tier=web"], "needle web", 3),
            entry("db-1", ["app=shop", "tier=db"], "needle db", 2),
            entry("db-1", ["app=shop", "tier=db"], "hay", 1),
            entry("solo", "app=shop", "needle solo", 4),
        ]
    )
    found = _lines(output, StoreQuery(selector="app=shop,tier!=web", grep="needle"))
    assert [(line.pod, line.text) for line in found] == [
        ("db-1", "needle db"),
        ("solo", "needle solo"),
    ]
    assert [line.text for line in _lines(output, StoreQuery(tail=1))] == ["needle solo"]


def test_corral_logs_finds_the_store_beside_the_kubeconfig(tmp_path: Path) -> None:
    from corralctl.storelogs import store_directory

    kubeconfig = tmp_path / "kubeconfig"
    args = argparse.Namespace(log_store="", kubeconfig=str(kubeconfig))
    assert store_directory(args) is None  # corral up made none here
    (tmp_path / "logstore").mkdir()
    assert store_directory(args) == tmp_path / "logstore"
    given = argparse.Namespace(log_store="/srv/logs", kubeconfig=str(kubeconfig))
    assert store_directory(given) == Path("/srv/logs")
