"""The request's attributes are worked out once per request, and never reused for another path."""

from __future__ import annotations

from typing import Any

from controlplane.apiserver import requestattributes
from controlplane.apiserver.requestattributes import request_attributes
from controlplane.auth.attributes import RequestAttributes, UserInfo, attributes_for, with_user
from controlplane.query import Query
from corral.api.resources import REGISTRY, Registry


def _scope(method: str, path: str, query: bytes = b"", kind: str = "http") -> dict[str, Any]:
    return {"type": kind, "method": method, "path": path, "query_string": query}


def test_the_same_as_attributes_for(monkeypatch: Any) -> None:
    scope = _scope("GET", "/api/v1/namespaces/prod/pods", b"watch=1&fieldSelector=a%3Db")
    expected = attributes_for(
        "GET", scope["path"], Query.parse(scope["query_string"]), UserInfo(""), REGISTRY
    )
    got = request_attributes(scope, REGISTRY)
    assert got == expected
    assert (got.verb, got.namespace, got.field_selector) == ("watch", "prod", "a=b")


def test_worked_out_once_per_request(monkeypatch: Any) -> None:
    calls: list[str] = []

    def counting(*args: Any) -> RequestAttributes:
        calls.append(args[1])
        return attributes_for(*args)

    monkeypatch.setattr(requestattributes, "attributes_for", counting)
    scope = _scope("POST", "/api/v1/namespaces/prod/pods")
    first = request_attributes(scope, REGISTRY)
    assert request_attributes(scope, REGISTRY) is first
    assert calls == ["/api/v1/namespaces/prod/pods"]
    # A scope whose path was changed, or another registry, is worked out afresh.
    scope["path"] = "/api/v1/namespaces/prod/secrets"
    assert request_attributes(scope, REGISTRY).resource == "secrets"
    other = Registry(list(REGISTRY))
    assert request_attributes(scope, other).resource == "secrets"
    assert len(calls) == 3


def test_websocket_reads_as_get_and_a_bad_query_as_none() -> None:
    exec_scope = _scope("", "/api/v1/namespaces/p/pods/web/exec", b"command=ls", "websocket")
    assert request_attributes(exec_scope, REGISTRY).verb == "get"
    repeated = _scope("GET", "/api/v1/pods", b"limit=1&limit=2")
    attrs = request_attributes(repeated, REGISTRY)
    assert (attrs.verb, attrs.resource) == ("list", "pods")


def test_with_user_changes_only_the_user() -> None:
    base = request_attributes(
        _scope("DELETE", "/apis/apps/v1/namespaces/p/deployments/d"), REGISTRY
    )
    alice = UserInfo("alice", ("dev",))
    mine = with_user(base, alice)
    assert mine.user == alice
    assert mine == attributes_for("DELETE", base.path, Query.parse(b""), alice, REGISTRY)
