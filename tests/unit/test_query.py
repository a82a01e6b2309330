"""The one parsed query: repeated single parameters refused, blanks read as absent."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.apiserver.params import DeleteParams, ListOptions, dry_run
from controlplane.auth.attributes import UserInfo, attributes_for
from controlplane.query import EMPTY, SCOPE_KEY, Query, request_query
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY

ALICE = UserInfo("alice", ("system:authenticated",))


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"fieldSelector=metadata.name%3Dx&fieldSelector=", "fieldSelector"),
        (b"watch=true&watch=", "watch"),
        (b"watch=true&watch=true", "watch"),
        (b"labelSelector=a%3Db&labelSelector=a%3Dc", "labelSelector"),
        (b"limit=1&resourceVersion=5&resourceVersion=0", "resourceVersion"),
        (b"follow=true&follow=false", "follow"),
        (b"container=a&tailLines=1&container=b", "container"),
        (b"field%53elector=x&fieldSelector=y", "fieldSelector"),  # the same name, escaped
        (b"unknownThing=1&unknownThing=2", "unknownThing"),
    ],
)
def test_a_repeated_single_parameter_is_a_400_naming_it(raw: bytes, name: str) -> None:
    with pytest.raises(ApiError) as refused:
        Query.parse(raw)
    status = refused.value.to_status()
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert [c["field"] for c in status["details"]["causes"]] == [name]
    assert name in status["message"]


def test_list_valued_parameters_keep_every_value_in_order_blanks_included() -> None:
    query = Query.parse(b"command=sh&command=-c&command=&command=echo%20hi&dryRun=All")
    assert query.getlist("command") == ("sh", "-c", "", "echo hi")
    assert query.getlist("dryRun") == ("All",)
    with pytest.raises(ValueError):
        query.get("command")


def test_a_blank_single_value_means_the_parameter_is_absent() -> None:
    query = Query.parse(b"fieldSelector=&watch=&limit=&includeObject=")
    assert query.get("fieldSelector") is None and query.text("watch") == ""
    options = ListOptions.parse(query)
    assert options.fields is None and not options.watch and options.limit == 0
    assert options.include_object == "Metadata"
    assert ListOptions.parse(query) == ListOptions.parse(EMPTY)
    # A blank dryRun is a value, and not one Kubernetes supports: no silent real write.
    with pytest.raises(ApiError) as refused:
        dry_run(Query.parse(b"dryRun="))
    assert refused.value.to_status()["details"]["causes"][0]["field"] == "dryRun"
    assert DeleteParams.parse(Query.parse(b"propagationPolicy=")).propagation_policy is None


@pytest.mark.parametrize(
    ("raw", "verb", "name", "watch"),
    [
        (b"fieldSelector=metadata.name%3Dx", "list", "x", False),
        (b"fieldSelector=metadata.name%3Dx&watch=true", "watch", "x", True),
        (b"fieldSelector=&watch=", "list", "", False),
        (b"watch=1", "watch", "", True),
    ],
)
def test_authorization_and_the_handler_read_the_same_values(
    raw: bytes, verb: str, name: str, watch: bool
) -> None:
    query = Query.parse(raw)
    attrs = attributes_for("GET", "/api/v1/namespaces/n/secrets", query, ALICE, REGISTRY)
    options = ListOptions.parse(query)
    assert (attrs.verb, attrs.name, options.watch) == (verb, name, watch)
    selected = options.fields.exact("metadata.name") if options.fields else None
    assert (selected or "") == name


def test_the_scope_keeps_one_parse_and_one_refusal() -> None:
    scope: dict[str, Any] = {"query_string": b"watch=true"}
    first = request_query(scope)
    assert request_query(scope) is first and scope[SCOPE_KEY] is first
    bad: dict[str, Any] = {"query_string": b"limit=1&limit=2"}
    for _ in range(2):
        with pytest.raises(ApiError):
            request_query(bad)
    assert isinstance(bad[SCOPE_KEY], ApiError)
    assert request_query({}) is not None and list(request_query({})) == []
