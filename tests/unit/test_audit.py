"""The audit log: which requests, what each line holds, rotation, and never a body."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY as PROMETHEUS

from controlplane.audit import AuditLog, audit_event, should_audit
from controlplane.auth.attributes import UserInfo, attributes_for
from controlplane.query import Query

from .auth.helpers import REGISTRY

CI = UserInfo("ci", ("deployers", "system:authenticated"))


def req(method: str, path: str, **query: str) -> Any:
    return attributes_for(method, path, Query.from_pairs(query.items()), CI, REGISTRY)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("verb", "code", "sub", "expected"),
    [
        ("create", 201, "", True),
        ("update", 200, "", True),
        ("patch", 200, "", True),
        ("delete", 200, "", True),
        ("deletecollection", 200, "", True),
        ("get", 200, "", False),
        ("list", 200, "", False),
        ("watch", 200, "", False),
        ("get", 403, "", True),
        ("list", 401, "", True),
        ("get", 101, "exec", True),
        ("get", 404, "", False),
    ],
)
def test_what_is_audited(verb: str, code: int, sub: str, expected: bool) -> None:
    assert should_audit(verb, code, sub) is expected


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/api/v1/namespaces/prod/secrets/db", {}),
        ("GET", "/api/v1/namespaces/prod/secrets", {}),
        ("GET", "/api/v1/secrets", {"watch": "true"}),
    ],
)
def test_every_read_of_secrets_is_audited_at_metadata(
    tmp_path: Path, method: str, path: str, query: dict[str, str]
) -> None:
    log = AuditLog(tmp_path / "audit.log")
    assert log.record_request(
        req(method, path, **query), request_uri=path, source_ip="", code=200, request_id="s"
    )
    # Not what merely shares the name: a Secret-named object of another kind.
    assert not log.record_request(
        req("GET", "/api/v1/namespaces/prod/configmaps/secrets"),
        request_uri="/x",
        source_ip="",
        code=200,
        request_id="c",
    )
    log.flush()
    (event,) = lines(tmp_path / "audit.log")
    assert event["level"] == "Metadata" and event["objectRef"]["resource"] == "secrets"
    assert "requestObject" not in event and "responseObject" not in event


def test_event_shape() -> None:
    received = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    event = audit_event(
        req("DELETE", "/apis/apps/v1/namespaces/prod/deployments/web"),
        request_uri="/apis/apps/v1/namespaces/prod/deployments/web?gracePeriodSeconds=0",
        source_ip="192.0.2.7",
        code=200,
        request_id="abc",
        user_agent="kubectl/v1.32",
        received=received,
        completed=received,
        decision="allow",
        reason='RBAC: allowed by RoleBinding "b/prod"',
    )
    assert event == {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "abc",
        "stage": "ResponseComplete",
        "requestURI": "/apis/apps/v1/namespaces/prod/deployments/web?gracePeriodSeconds=0",
        "verb": "delete",
        "user": {"username": "ci", "groups": ["deployers", "system:authenticated"]},
        "sourceIPs": ["192.0.2.7"],
        "userAgent": "kubectl/v1.32",
        "objectRef": {
            "resource": "deployments",
            "namespace": "prod",
            "name": "web",
            "apiGroup": "apps",
            "apiVersion": "v1",
        },
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2025-01-02T03:04:05.123456Z",
        "stageTimestamp": "2025-01-02T03:04:05.123456Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": 'RBAC: allowed by RoleBinding "b/prod"',
        },
    }


def test_subresource_in_object_ref() -> None:
    event = audit_event(
        req("POST", "/api/v1/namespaces/prod/pods/web/exec"),
        request_uri="/x",
        source_ip="",
        code=101,
        request_id="r",
    )
    assert event["objectRef"]["subresource"] == "exec"
    assert event["sourceIPs"] == []


def test_non_resource_request_has_no_object_ref() -> None:
    event = audit_event(
        req("POST", "/ui/login"), request_uri="/ui/login", source_ip="", code=403, request_id="r"
    )
    assert "objectRef" not in event


def test_lines_are_written_on_flush(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    assert log.record_request(
        req("POST", "/api/v1/namespaces/prod/secrets"),
        request_uri="/api/v1/namespaces/prod/secrets",
        source_ip="192.0.2.1",
        code=201,
        request_id="1",
    )
    assert not log.record_request(
        req("GET", "/api/v1/namespaces/prod/configmaps"),
        request_uri="/api/v1/namespaces/prod/configmaps",
        source_ip="192.0.2.1",
        code=200,
        request_id="2",
    )
    assert log.record_request(
        req("GET", "/api/v1/namespaces/prod/secrets/db"),
        request_uri="/api/v1/namespaces/prod/secrets/db",
        source_ip="192.0.2.1",
        code=403,
        request_id="3",
        reason="no",
    )
    assert not (tmp_path / "audit.log").exists()  # nothing written on the request path
    log.flush()
    written = lines(tmp_path / "audit.log")
    assert [e["auditID"] for e in written] == ["1", "3"]
    assert written[0]["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert written[1]["annotations"]["authorization.k8s.io/decision"] == "forbid"
    assert written[1]["responseStatus"]["code"] == 403


def test_no_body_ever(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.record_request(
        req("PUT", "/api/v1/namespaces/prod/secrets/db"),
        request_uri="/api/v1/namespaces/prod/secrets/db",
        source_ip="192.0.2.1",
        code=200,
        request_id="1",
    )
    log.flush()
    event = lines(tmp_path / "audit.log")[0]
    for field in ("requestObject", "responseObject", "body", "data"):
        assert field not in event
    with pytest.raises(TypeError):
        log.record_request(  # type: ignore[call-arg]
            req("PUT", "/api/v1/namespaces/prod/secrets/db"),
            request_uri="/x",
            source_ip="",
            code=200,
            request_id="2",
            body=b'{"data":{"password":"c2VjcmV0"}}',
        )


def _event(i: int) -> dict[str, Any]:
    return {"auditID": f"{i:04d}", "pad": "x" * 80}


def test_rotation_keeps_n_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, max_bytes=1000, backups=2)
    for i in range(60):
        log.record(_event(i))
        log.flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 1000
    newest = lines(path)[-1]["auditID"]
    assert newest == "0059"
    # The backups hold the lines just before, oldest in the highest number.
    assert (
        lines(tmp_path / "audit.log.2")[-1]["auditID"]
        < lines(tmp_path / "audit.log.1")[0]["auditID"]
    )


def test_rotation_within_one_flush(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, max_bytes=1000, backups=5)
    for i in range(25):
        log.record(_event(i))
    log.flush()
    total = sum(len(lines(p)) for p in tmp_path.iterdir())
    assert total == 25


def test_no_backups_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, max_bytes=500, backups=0)
    for i in range(20):
        log.record(_event(i))
        log.flush()
    assert [p.name for p in tmp_path.iterdir()] == ["audit.log"]
    assert lines(path)[-1]["auditID"] == "0019"


def test_file_is_private(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.record(_event(1))
    log.flush()
    assert (tmp_path / "audit.log").stat().st_mode & 0o777 == 0o600


def test_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text('{"auditID":"old"}\n')
    log = AuditLog(path)
    log.record(_event(1))
    log.flush()
    assert [e["auditID"] for e in lines(path)] == ["old", "0001"]


def test_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log", max_buffered=3)
    for i in range(5):
        log.record(_event(i))
    assert log.dropped == 2
    log.flush()
    assert len(lines(tmp_path / "audit.log")) == 3


def _lost() -> float:
    return PROMETHEUS.get_sample_value("apiserver_audit_error_total", {"plugin": "buffered"}) or 0.0


def test_lost_lines_show_as_audit_errors(tmp_path: Path) -> None:
    before = _lost()
    full = AuditLog(tmp_path / "audit.log", max_buffered=2)
    for i in range(5):
        full.record(_event(i))
    assert _lost() == before + 3
    unwritable = tmp_path / "a-directory"
    unwritable.mkdir()
    broken = AuditLog(unwritable)
    for i in range(4):
        broken.record(_event(i))
    with pytest.raises(OSError):
        broken.flush()
    assert _lost() == before + 7


def test_bad_limits() -> None:
    with pytest.raises(ValueError):
        AuditLog("x", max_bytes=0)
    with pytest.raises(ValueError):
        AuditLog("x", backups=-1)


async def test_background_flush_and_close(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(path, flush_interval=0.01)
    log.start()
    log.record(_event(1))
    for _ in range(200):
        if path.exists() and path.read_text():
            break
        await asyncio.sleep(0.01)
    assert [e["auditID"] for e in lines(path)] == ["0001"]
    log.record(_event(2))
    await log.close()  # flushes what is left
    assert [e["auditID"] for e in lines(path)] == ["0001", "0002"]
