"""Schemathesis against corral's own OpenAPI document: generated requests never get a 5xx.

The run goes to a cluster of its own (it creates and deletes whatever the
document allows, namespaces included) over HTTPS with the admin's client
certificate, so every request gets past authentication and reaches the
handlers.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIN_REQUESTS = 1000


def _schemathesis() -> list[str]:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    return [found]


@pytest.mark.timeout(900)
def test_generated_requests_never_get_a_server_error(
    cluster_factory: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    command = _schemathesis()
    cluster = cluster_factory()
    events = tmp_path / "events.ndjson"
    argv = [
        *command, "run", f"{cluster.url}/openapi.json",
        "--checks", "not_a_server_error",
        "--tls-verify", str(cluster.pki.ca_cert),
        "--request-cert", str(cluster.pki.admin_cert),
        "--request-cert-key", str(cluster.pki.admin_key),
        "--max-examples", "5",
        "--seed", "20261206",
        "--generation-deterministic",
        "--no-shrink",
        "--continue-on-failure",
        "--workers", "4",
        # A generated watch=true streams until the timeout; that is the API
        # working, and is checked below to be the only kind of error.
        "--request-timeout", "5",
        "--max-time", "240",
        "--report", "ndjson",
        "--report-ndjson-path", str(events),
        "--no-color",
    ]  # fmt: skip
    run = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=840,
        cwd=tmp_path,
    )
    statuses: list[tuple[int, bytes]] = []
    errors: list[dict[str, str]] = []
    with events.open() as lines:
        for line in lines:
            event = json.loads(line)
            _collect_statuses(event, statuses)
            if "NonFatalError" in event:
                error = event["NonFatalError"]
                errors.append({"label": error.get("label", ""), **error.get("value", {})})
    server_errors = [s for s, body in statuses if s >= 500 and not _too_new(s, body)]
    assert len(statuses) >= MIN_REQUESTS, (len(statuses), run.stdout[-3000:])
    assert not server_errors, run.stdout[-6000:]
    assert "Failures:" not in run.stdout, run.stdout[-6000:]
    unexplained = [e for e in errors if not _is_watch_timeout(e) and not _is_generator_recursion(e)]
    assert not unexplained, unexplained[:5]
    assert run.returncode == 0 or errors, run.stdout[-6000:]


def _is_watch_timeout(error: dict[str, str]) -> bool:
    """A read timeout on a collection GET: a list the fuzzer turned into a watch."""
    method, _, path = error.get("label", "").partition(" ")
    timed_out = "Read timed out" in error.get("message", "")
    return timed_out and method == "GET" and not path.endswith("}")


def _is_generator_recursion(error: dict[str, str]) -> bool:
    """The fuzzer's own crash while building a CRD body, not anything corral answered.

    A CRD's ``openAPIV3Schema`` is free-form JSON; Hypothesis nests it until
    Python's recursion limit, and CPython 3.11 then reports the unwound
    compile as this SystemError inside the fuzzer's process (no request is
    sent). Only CRD writes carry such a body; tests/integration/test_crd.py
    covers their handling, including bodies nested past the server's bound.

    The label does not narrow it down: once CPython's recursion counter is
    off, the mismatch shows on whichever operation the fuzzer compiles next
    (a CI run saw it on ``GET /api/v1/configmaps``). It is a SystemError of
    the fuzzer's own interpreter, never an answer; every status the server
    did send is checked above.
    """
    return error.get("type") == "SystemError" and (
        "AST constructor recursion depth mismatch" in error.get("message", "")
    )


def _too_new(status: int, body: bytes) -> bool:
    """Kubernetes' own 504 for a resourceVersion ahead of the store, after waiting for it."""
    return status == 504 and b"Too large resource version" in body


def _collect_statuses(node: object, into: list[tuple[int, bytes]]) -> None:
    """Every response status code, with its body, recorded anywhere in one event."""
    if isinstance(node, dict):
        response = node.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            content = response.get("content") or ""
            body = (
                base64.b64decode(content.get("$base64", ""))
                if isinstance(content, dict)
                else str(content).encode()
            )
            into.append((response["status_code"], body))
        for key, value in node.items():
            if key != "response":
                _collect_statuses(value, into)
    elif isinstance(node, list):
        for item in node:
            _collect_statuses(item, into)
