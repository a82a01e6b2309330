"""HTTP requests on corral's paths, as Kubernetes' request attributes."""

from __future__ import annotations

import pytest

from controlplane.auth.attributes import with_verb
from controlplane.query import TRUE

from .helpers import request, user

NS_PODS = "/api/v1/namespaces/prod/pods"


@pytest.mark.parametrize(
    ("method", "path", "query", "verb", "name"),
    [
        ("GET", f"{NS_PODS}/web", {}, "get", "web"),
        ("GET", NS_PODS, {}, "list", ""),
        ("GET", NS_PODS, {"watch": "true"}, "watch", ""),
        ("GET", NS_PODS, {"watch": "1"}, "watch", ""),
        ("GET", NS_PODS, {"watch": "false"}, "list", ""),
        ("POST", NS_PODS, {}, "create", ""),
        ("PUT", f"{NS_PODS}/web", {}, "update", "web"),
        ("PATCH", f"{NS_PODS}/web", {}, "patch", "web"),
        ("DELETE", f"{NS_PODS}/web", {}, "delete", "web"),
        ("DELETE", NS_PODS, {}, "deletecollection", ""),
    ],
)
def test_methods_become_verbs(
    method: str, path: str, query: dict[str, str], verb: str, name: str
) -> None:
    attrs = request(method, path, None, **query)
    assert (attrs.verb, attrs.resource, attrs.namespace, attrs.name) == (
        verb,
        "pods",
        "prod",
        name,
    )
    assert attrs.resource_request
    assert attrs.api_group == ""
    assert attrs.api_version == "v1"


def test_watch_reads_the_parameter_as_the_router_does() -> None:
    for value in TRUE:
        assert request("GET", NS_PODS, watch=value.upper()).verb == "watch"


def test_a_named_get_with_watch_is_still_a_get() -> None:
    assert request("GET", f"{NS_PODS}/web", watch="true").verb == "get"


def test_group_resources() -> None:
    attrs = request("PATCH", "/apis/apps/v1/namespaces/prod/deployments/web")
    assert (attrs.api_group, attrs.api_version, attrs.resource, attrs.verb) == (
        "apps",
        "v1",
        "deployments",
        "patch",
    )
    assert attrs.qualified_resource == "deployments.apps"


def test_list_across_namespaces() -> None:
    attrs = request("GET", "/api/v1/pods")
    assert (attrs.verb, attrs.namespace, attrs.resource) == ("list", "", "pods")


def test_cluster_scoped_resource() -> None:
    attrs = request("GET", "/api/v1/nodes/n1")
    assert (attrs.resource, attrs.name, attrs.namespace) == ("nodes", "n1", "")


@pytest.mark.parametrize(
    ("method", "path", "verb", "resource", "subresource"),
    [
        ("GET", f"{NS_PODS}/web/log", "get", "pods", "log"),
        ("POST", f"{NS_PODS}/web/exec", "create", "pods", "exec"),
        ("GET", f"{NS_PODS}/web/exec", "get", "pods", "exec"),
        ("POST", f"{NS_PODS}/web/binding", "create", "pods", "binding"),
        ("POST", f"{NS_PODS}/web/eviction", "create", "pods", "eviction"),
        ("PUT", f"{NS_PODS}/web/status", "update", "pods", "status"),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/prod/deployments/web/scale",
            "patch",
            "deployments",
            "scale",
        ),
        (
            "GET",
            "/api/v1/namespaces/prod/replicationcontrollers/rc/scale",
            "get",
            "replicationcontrollers",
            "scale",
        ),
    ],
)
def test_subresources(method: str, path: str, verb: str, resource: str, subresource: str) -> None:
    attrs = request(method, path)
    assert (attrs.verb, attrs.resource, attrs.subresource, attrs.name) == (
        verb,
        resource,
        subresource,
        path.split("/")[-2],
    )


def test_namespace_itself() -> None:
    attrs = request("GET", "/api/v1/namespaces/prod")
    assert (attrs.resource, attrs.name, attrs.namespace) == ("namespaces", "prod", "prod")


@pytest.mark.parametrize("sub", ["status", "finalize"])
def test_namespace_subresources_are_not_resources(sub: str) -> None:
    attrs = request("PUT", f"/api/v1/namespaces/prod/{sub}")
    assert (attrs.resource, attrs.name, attrs.subresource) == ("namespaces", "prod", sub)


def test_list_of_namespaces() -> None:
    attrs = request("GET", "/api/v1/namespaces")
    assert (attrs.verb, attrs.resource, attrs.namespace) == ("list", "namespaces", "")


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/version",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/apis/apps/v1",
        "/openapi/v3/apis/apps/v1",
        "/docs",
        "/ui/index.html",
        "/api/v1/",
    ],
)
def test_non_resource_paths(path: str) -> None:
    attrs = request("GET", path)
    assert not attrs.resource_request
    assert attrs.verb == "get"
    assert attrs.path == path


def test_non_resource_verb_is_the_method() -> None:
    assert request("POST", "/ui/login").verb == "post"


def test_metadata_name_field_selector_names_the_object() -> None:
    attrs = request("GET", NS_PODS, watch="true", fieldSelector="metadata.name=web")
    assert (attrs.verb, attrs.name) == ("watch", "web")


def test_other_field_selectors_do_not_name_anything() -> None:
    assert request("GET", NS_PODS, fieldSelector="metadata.name!=web").name == ""
    assert request("GET", NS_PODS, fieldSelector="spec.nodeName=n1").name == ""
    assert request("GET", NS_PODS, fieldSelector="metadata.name=a/b").name == ""


def test_selectors_are_carried() -> None:
    attrs = request("GET", NS_PODS, fieldSelector="spec.nodeName=n1", labelSelector="app=web")
    assert (attrs.field_selector, attrs.label_selector) == ("spec.nodeName=n1", "app=web")


def test_with_verb_keeps_everything_else() -> None:
    attrs = request("GET", f"{NS_PODS}/web/exec", user("bob"))
    changed = with_verb(attrs, "create")
    assert changed.verb == "create"
    assert (changed.resource, changed.subresource, changed.name, changed.user.name) == (
        "pods",
        "exec",
        "web",
        "bob",
    )


def test_read_only_split() -> None:
    assert request("GET", NS_PODS).read_only
    assert not request("POST", NS_PODS).read_only
