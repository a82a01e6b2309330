"""CustomResourceDefinitions through the official Python client and the real kubectl.

Each test defines its own group (CRDs are cluster-wide and the cluster is
shared), waits for nothing (corral establishes a CRD as it stores it, and a
request that names a kind not yet served first lets the server catch up),
and deletes the CRD at the end, which deletes its objects.
"""

from __future__ import annotations

import copy
import json
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.namespace import NamespaceController
from corral.api.crd import resource_types
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY, ResourceType
from corral.client.rest import Client
from tests.conftest import LocalCluster, unique_name
from tests.integration.test_controllers_harness import running
from tests.integration.test_kubectl import kubectl
from tests.support import eventually


def widget_crd(group: str, *, scope: str = "Namespaced") -> dict[str, Any]:
    """A CRD whose schema exercises types, required, enum, pattern, bounds and defaults."""
    spec_schema = {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "pattern": "^[a-z0-9./:-]+$", "maxLength": 64},
            "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
            "size": {"type": "string", "enum": ["small", "large"], "default": "small"},
            "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "port": {"x-kubernetes-int-or-string": True},
            "tags": {"type": "array", "maxItems": 3, "items": {"type": "string", "minLength": 1}},
            "note": {"type": "string", "nullable": True},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    version = {
        "served": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": spec_schema,
                    "status": {
                        "type": "object",
                        "properties": {"ready": {"type": "integer"}, "phase": {"type": "string"}},
                    },
                },
            }
        },
        "subresources": {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.ready",
            },
        },
        "selectableFields": [{"jsonPath": ".spec.size"}],
        "additionalPrinterColumns": [
            {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": ["wdg"],
            },
            "versions": [
                {**copy.deepcopy(version), "name": "v1", "storage": True},
                {**copy.deepcopy(version), "name": "v1beta1", "storage": False},
            ],
        },
    }


def widget(group: str, name: str, version: str = "v1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "Widget",
        "metadata": {"name": name, "labels": {"app": "widgets"}},
        "spec": {"image": "nginx:1", **spec},
    }


@pytest.fixture
def group() -> str:
    return f"{unique_name('g')}.corral.test"


@pytest.fixture
def api_client(cluster: LocalCluster) -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()


def _status_body(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body)
    return body


def test_python_client_schema_defaults_and_refusals(
    api_client: k8s.ApiClient, namespace: str, group: str
) -> None:
    extensions = k8s.ApiextensionsV1Api(api_client)
    custom = k8s.CustomObjectsApi(api_client)
    created_crd = extensions.create_custom_resource_definition(widget_crd(group))
    try:
        conditions = {c.type: c.status for c in created_crd.status.conditions}
        assert conditions == {"NamesAccepted": "True", "Established": "True"}
        assert created_crd.status.accepted_names.kind == "Widget"

        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(
                group, "v1", namespace, "widgets", widget(group, "bad", replicas=11)
            )
        assert refused.value.status == 422
        status = _status_body(refused.value)
        assert status["reason"] == "Invalid"
        assert status["details"]["causes"][0]["field"] == "spec.replicas"
        assert status["message"] == (
            f'Widget.{group} "bad" is invalid: spec.replicas: Invalid value: 11: '
            "spec.replicas in body should be less than or equal to 10"
        )

        bad = widget(group, "bad2", size="huge", port=1.5, tags=["a", "b", "c", "d"])
        del bad["spec"]["image"]
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", bad)
        fields = {c["field"] for c in _status_body(refused.value)["details"]["causes"]}
        assert fields == {"spec.image", "spec.size", "spec.port", "spec.tags"}

        made = custom.create_namespaced_custom_object(
            group, "v1", namespace, "widgets", widget(group, "w1", port="http", note=None)
        )
        assert made["spec"]["replicas"] == 1 and made["spec"]["size"] == "small"
        assert made["spec"]["note"] is None
        assert made["metadata"]["generation"] == 1

        fetched = custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w1")
        assert fetched["metadata"]["uid"] == made["metadata"]["uid"]
        # Another served version reads the same object, with its own apiVersion.
        beta = custom.get_namespaced_custom_object(group, "v1beta1", namespace, "widgets", "w1")
        assert beta["apiVersion"] == f"{group}/v1beta1"
        assert beta["metadata"]["uid"] == made["metadata"]["uid"]

        # Unknown fields: refused under Strict (the default), pruned under Ignore.
        unknown = widget(group, "w2", colour="red")
        unknown["status"] = {"ready": 1}
        unknown["top"] = 1
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", unknown)
        assert refused.value.status == 400
        fields = {c["field"] for c in _status_body(refused.value)["details"]["causes"]}
        assert fields == {"spec.colour", "top"}
        pruned = custom.create_namespaced_custom_object(
            group, "v1", namespace, "widgets", unknown, field_validation="Ignore"
        )
        assert "colour" not in pruned["spec"] and "top" not in pruned
        assert "status" not in pruned  # the status subresource owns it

        removed = custom.delete_collection_namespaced_custom_object(
            group, "v1", namespace, "widgets", label_selector="app=widgets"
        )
        assert sorted(i["metadata"]["name"] for i in removed["items"]) == ["w1", "w2"]
        listed = custom.list_namespaced_custom_object(group, "v1", namespace, "widgets")
        assert listed["items"] == []
    finally:
        extensions.delete_custom_resource_definition(f"widgets.{group}")


def test_python_client_watch_selectors_subresources_and_removal(
    api_client: k8s.ApiClient, namespace: str, group: str
) -> None:
    extensions = k8s.ApiextensionsV1Api(api_client)
    custom = k8s.CustomObjectsApi(api_client)
    extensions.create_custom_resource_definition(widget_crd(group))
    deleted = False
    try:
        first = custom.create_namespaced_custom_object(
            group, "v1", namespace, "widgets", widget(group, "w1")
        )
        other = widget(group, "w2")
        other["metadata"]["labels"] = {"app": "other"}
        custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", other)

        listed = custom.list_namespaced_custom_object(
            group, "v1", namespace, "widgets", label_selector="app=widgets"
        )
        assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
        assert listed["kind"] == "WidgetList"
        large = widget(group, "w9", size="large")
        custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", large)
        by_field = custom.list_namespaced_custom_object(
            group, "v1", namespace, "widgets", field_selector="spec.size=large"
        )
        assert [i["metadata"]["name"] for i in by_field["items"]] == ["w9"]
        with pytest.raises(ApiException) as refused:
            custom.list_namespaced_custom_object(
                group, "v1", namespace, "widgets", field_selector="spec.image=x"
            )
        assert refused.value.status == 400
        custom.delete_namespaced_custom_object(group, "v1", namespace, "widgets", "w9")
        listed = custom.list_namespaced_custom_object(
            group, "v1", namespace, "widgets", label_selector="app=widgets"
        )

        seen: list[tuple[str, str]] = []
        watcher = k8s_watch.Watch()

        def watch() -> None:
            for event in watcher.stream(
                custom.list_namespaced_custom_object,
                group,
                "v1",
                namespace,
                "widgets",
                label_selector="app=widgets",
                resource_version=listed["metadata"]["resourceVersion"],
                timeout_seconds=20,
            ):
                seen.append((event["type"], event["object"]["metadata"]["name"]))
                if len(seen) == 3:
                    watcher.stop()

        thread = threading.Thread(target=watch)
        thread.start()
        custom.patch_namespaced_custom_object(
            group, "v1", namespace, "widgets", "w1", {"spec": {"replicas": 3}}
        )
        custom.create_namespaced_custom_object(
            group, "v1", namespace, "widgets", widget(group, "w3")
        )
        custom.delete_namespaced_custom_object(group, "v1", namespace, "widgets", "w3")
        custom.patch_namespaced_custom_object(  # not selected: no event
            group, "v1", namespace, "widgets", "w2", {"spec": {"replicas": 2}}
        )
        thread.join(30)
        assert not thread.is_alive()
        assert seen == [("MODIFIED", "w1"), ("ADDED", "w3"), ("DELETED", "w3")]

        # The main resource ignores status; /status ignores everything else.
        with_status = widget(group, "w1", replicas=3)
        with_status["status"] = {"ready": 9}
        with_status["metadata"]["resourceVersion"] = None
        replaced = custom.replace_namespaced_custom_object(
            group, "v1", namespace, "widgets", "w1", with_status
        )
        assert "status" not in replaced and replaced["metadata"]["generation"] == 2
        status = custom.patch_namespaced_custom_object_status(
            group,
            "v1",
            namespace,
            "widgets",
            "w1",
            {"status": {"ready": 2, "phase": "Running"}, "spec": {"replicas": 7}},
        )
        assert status["status"] == {"ready": 2, "phase": "Running"}
        assert status["spec"]["replicas"] == 3

        scale = custom.get_namespaced_custom_object_scale(group, "v1", namespace, "widgets", "w1")
        assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 2
        custom.patch_namespaced_custom_object_scale(
            group, "v1", namespace, "widgets", "w1", {"spec": {"replicas": 5}}
        )
        fetched = custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w1")
        assert fetched["spec"]["replicas"] == 5
        assert fetched["metadata"]["uid"] == first["metadata"]["uid"]

        # A JSON patch is validated against the schema like any write.
        with pytest.raises(ApiException) as refused:
            custom.patch_namespaced_custom_object(
                group,
                "v1",
                namespace,
                "widgets",
                "w1",
                [{"op": "replace", "path": "/spec/replicas", "value": "many"}],
                _content_type="application/json-patch+json",
            )
        assert refused.value.status == 422
        assert _status_body(refused.value)["details"]["causes"][0]["field"] == "spec.replicas"

        groups = {g.name for g in k8s.ApisApi(api_client).get_api_versions().groups}
        assert group in groups

        extensions.delete_custom_resource_definition(f"widgets.{group}")
        deleted = True
        groups = {g.name for g in k8s.ApisApi(api_client).get_api_versions().groups}
        assert group not in groups
        with pytest.raises(ApiException) as gone:
            custom.list_namespaced_custom_object(group, "v1", namespace, "widgets")
        assert gone.value.status == 404

        # Defined again, the kind starts empty: its objects went with the definition.
        extensions.create_custom_resource_definition(widget_crd(group))
        again = custom.list_namespaced_custom_object(group, "v1", namespace, "widgets")
        assert again["items"] == []
        extensions.delete_custom_resource_definition(f"widgets.{group}")
    finally:
        if not deleted:
            extensions.delete_custom_resource_definition(f"widgets.{group}")


def test_python_client_refuses_bad_definitions(api_client: k8s.ApiClient, group: str) -> None:
    extensions = k8s.ApiextensionsV1Api(api_client)
    crd = widget_crd(group)
    crd["spec"]["versions"][1]["storage"] = True
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "size"
    ] = {"enum": ["a"]}
    crd["spec"]["scope"] = "Galaxy"
    with pytest.raises(ApiException) as refused:
        extensions.create_custom_resource_definition(crd)
    assert refused.value.status == 422
    fields = {c["field"] for c in _status_body(refused.value)["details"]["causes"]}
    assert fields == {
        "spec.scope",
        "spec.versions",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type",
        "spec.versions[0].selectableFields[0].jsonPath",  # spec.size is no longer a string
    }


def _get(api_client: k8s.ApiClient, path: str) -> dict[str, Any]:
    """A GET of any path, with the client's own credentials."""
    request = api_client.param_serialize("GET", path, auth_settings=["BearerToken"])
    response = api_client.call_api(*request)
    response.read()
    document: dict[str, Any] = json.loads(response.data)
    return document


def _write(tmp_path: Path, name: str, document: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_kubectl_defines_serves_and_removes_a_kind(
    kubectl_env: dict[str, str], namespace: str, group: str, tmp_path: Path
) -> None:
    crd = widget_crd(group, scope="Cluster")
    kubectl(kubectl_env, "apply", "-f", _write(tmp_path, "crd.json", crd))
    try:
        established = kubectl(
            kubectl_env, "wait", "--for=condition=Established", f"crd/widgets.{group}"
        )
        assert "condition met" in established.stdout
        empty = kubectl(kubectl_env, "get", f"widgets.{group}")
        assert "No resources found" in empty.stderr

        made = kubectl(
            kubectl_env, "create", "-f", _write(tmp_path, "w.json", widget(group, "alpha"))
        )
        assert f"widget.{group}/alpha created" in made.stdout
        kubectl(
            kubectl_env,
            "create",
            "-f",
            _write(tmp_path, "w2.json", widget(group, "beta", image="busybox:2", replicas=4)),
        )
        kubectl(kubectl_env, "label", f"widgets.{group}", "beta", "tier=gold")

        applied = _write(tmp_path, "w3.json", widget(group, "delta", replicas=2))
        first = kubectl(kubectl_env, "apply", "-f", applied)
        assert f"widget.{group}/delta created" in first.stdout
        second = kubectl(kubectl_env, "apply", "-f", applied)
        assert f"widget.{group}/delta unchanged" in second.stdout
        server_side = kubectl(kubectl_env, "apply", "--server-side", "-f", applied)
        assert f"widget.{group}/delta serverside-applied" in server_side.stdout
        kubectl(kubectl_env, "delete", f"widgets.{group}", "delta")

        bad = kubectl(
            kubectl_env,
            "create",
            "-f",
            _write(tmp_path, "bad.json", widget(group, "gamma", image="UPPER CASE")),
            check=False,
        )
        assert bad.returncode != 0
        assert "spec.image" in bad.stderr and "should match" in bad.stderr

        table = kubectl(kubectl_env, "get", f"widgets.{group}").stdout.splitlines()
        assert table[0].split() == ["NAME", "IMAGE", "REPLICAS", "PHASE", "AGE"]
        assert table[1].split()[:3] == ["alpha", "nginx:1", "1"]
        assert table[2].split()[:3] == ["beta", "busybox:2", "4"]

        selected = kubectl(kubectl_env, "get", "wdg", "-l", "tier=gold", "-o", "name")
        assert selected.stdout.split() == [f"widget.{group}/beta"]

        scaled = kubectl(kubectl_env, "scale", f"widgets.{group}", "alpha", "--replicas=6")
        assert "scaled" in scaled.stdout
        shown = json.loads(kubectl(kubectl_env, "get", "wdg", "alpha", "-o", "json").stdout)
        assert shown["spec"]["replicas"] == 6 and shown["spec"]["size"] == "small"

        explained = kubectl(kubectl_env, "explain", f"widgets.{group}.spec").stdout
        assert "replicas" in explained and "image" in explained

        resources = kubectl(kubectl_env, "api-resources", "--api-group", group).stdout
        assert "widgets" in resources and "wdg" in resources
    finally:
        kubectl(kubectl_env, "delete", "crd", f"widgets.{group}", check=False)
    fresh_env = {**kubectl_env, "KUBECACHEDIR": str(tmp_path / "fresh-cache")}
    after = kubectl(fresh_env, "api-resources", "--api-group", group).stdout
    assert "widgets" not in after
    missing = kubectl(fresh_env, "get", f"widgets.{group}", check=False)
    assert missing.returncode != 0


def test_openapi_follows_definitions(api_client: k8s.ApiClient, group: str) -> None:
    extensions = k8s.ApiextensionsV1Api(api_client)
    crd = widget_crd(group)
    crd["spec"]["versions"].reverse()  # v1beta1 first: discovery still prefers v1
    extensions.create_custom_resource_definition(crd)

    def index() -> dict[str, Any]:
        return dict(_get(api_client, "/openapi/v3")["paths"])

    try:
        assert _get(api_client, f"/apis/{group}")["preferredVersion"]["version"] == "v1"
        assert f"apis/{group}/v1" in index()
        document = _get(api_client, f"/openapi/v3/apis/{group}/v1")
        reversed_group = ".".join(reversed(group.split(".")))
        schema = document["components"]["schemas"][f"{reversed_group}.v1.Widget"]
        assert schema["properties"]["spec"]["required"] == ["image"]
    finally:
        extensions.delete_custom_resource_definition(f"widgets.{group}")
    assert f"apis/{group}/v1" not in index()


async def test_deleting_a_namespace_deletes_its_custom_objects(client: Client, group: str) -> None:
    crds = REGISTRY.require("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    namespaces = REGISTRY.require("v1", "Namespace")
    crd = await client.create(crds, widget_crd(group))
    widgets = next(rt for rt in resource_types(crd) if rt.version == "v1")
    name = unique_name("doomed")
    await client.create(namespaces, {"metadata": {"name": name}})
    try:
        await client.create(widgets, widget(group, "w1"), name)
        async with running(client, name, NamespaceController):
            await client.delete(namespaces, name)

            async def gone() -> bool:
                try:
                    await client.get(namespaces, name)
                except ApiError as error:
                    return error.code == 404
                return False

            await eventually(gone, message="the namespace removed")
        assert (await client.list(widgets, name))["items"] == []
    finally:
        await client.delete(crds, f"widgets.{group}")


def corral(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The corral command line, as installed beside this interpreter."""
    command = str(Path(sys.executable).parent / "corral")
    return subprocess.run(
        [command, *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_corral_cli_resolves_custom_kinds(
    cluster: LocalCluster, api_client: k8s.ApiClient, namespace: str, group: str, tmp_path: Path
) -> None:
    extensions = k8s.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(widget_crd(group))
    try:
        manifest = _write(tmp_path, "w.json", widget(group, "w1"))
        made = corral(cluster, "create", "-n", namespace, "-f", manifest)
        assert made.returncode == 0, made.stderr
        listed = corral(cluster, "get", "wdg", "-n", namespace, "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert [i["metadata"]["name"] for i in json.loads(listed.stdout)["items"]] == ["w1"]
        shown = corral(cluster, "get", f"widgets.{group}", "w1", "-n", namespace)
        assert shown.returncode == 0 and "w1" in shown.stdout, shown.stderr
        deleted = corral(cluster, "delete", "widget", "w1", "-n", namespace)
        assert deleted.returncode == 0, deleted.stderr
        unknown = corral(cluster, "get", "gadgets", "-n", namespace)
        assert unknown.returncode != 0
        assert 'the server doesn\'t have a resource type "gadgets"' in unknown.stderr
    finally:
        extensions.delete_custom_resource_definition(f"widgets.{group}")


def test_a_second_definition_of_a_kind_is_not_established(
    api_client: k8s.ApiClient, group: str
) -> None:
    extensions = k8s.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(widget_crd(group))
    twin = widget_crd(group)
    twin["metadata"]["name"] = f"widgetz.{group}"
    twin["spec"]["names"] = {"plural": "widgetz", "kind": "Widget"}
    try:
        created = extensions.create_custom_resource_definition(twin)
        conditions = {c.type: (c.status, c.reason) for c in created.status.conditions}
        assert conditions == {
            "NamesAccepted": ("False", "KindConflict"),
            "Established": ("False", "NotAccepted"),
        }
        served = _get(api_client, f"/apis/{group}/v1")
        assert [r["name"] for r in served["resources"]] == [
            "widgets",
            "widgets/status",
            "widgets/scale",
        ]
    finally:
        extensions.delete_custom_resource_definition(f"widgets.{group}")
        extensions.delete_custom_resource_definition(f"widgetz.{group}")


def _open_crd(group: str, plural: str, kind: str) -> dict[str, Any]:
    """A CRD whose spec keeps whatever it is given."""
    spec = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}},
                }
            ],
        },
    }


def test_custom_kinds_named_like_built_in_ones_are_not_them(
    api_client: k8s.ApiClient, namespace: str, group: str
) -> None:
    extensions = k8s.ApiextensionsV1Api(api_client)
    custom = k8s.CustomObjectsApi(api_client)
    extensions.create_custom_resource_definition(_open_crd(group, "services", "Service"))
    extensions.create_custom_resource_definition(_open_crd(group, "pods", "Pod"))
    try:
        service = custom.create_namespaced_custom_object(
            group,
            "v1",
            namespace,
            "services",
            {
                "apiVersion": f"{group}/v1",
                "kind": "Service",
                "metadata": {"name": "s"},
                "spec": {"type": "NodePort", "ports": "any"},
            },
        )
        assert service["spec"] == {"type": "NodePort", "ports": "any"}  # no address allocated
        pod = custom.create_namespaced_custom_object(
            group,
            "v1",
            namespace,
            "pods",
            {
                "apiVersion": f"{group}/v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]},
            },
        )
        assert pod["spec"]["containers"][0]["securityContext"] == {"privileged": True}
        # The built-in kinds are untouched by the custom ones of the same names.
        core = k8s.CoreV1Api(api_client)
        assert core.list_namespaced_pod(namespace).items == []
    finally:
        extensions.delete_custom_resource_definition(f"services.{group}")
        extensions.delete_custom_resource_definition(f"pods.{group}")


async def test_the_garbage_collector_follows_custom_kinds(client: Client, group: str) -> None:
    """Deleting a Widget deletes the ConfigMap it owns, and a Widget owned by a deleted
    ConfigMap goes too: the collector follows kinds defined after it started."""
    crds = REGISTRY.require("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    namespaces = REGISTRY.require("v1", "Namespace")
    configmaps = REGISTRY.require("v1", "ConfigMap")
    name = unique_name("gc")
    await client.create(namespaces, {"metadata": {"name": name}})
    try:
        async with running(client, name, GarbageCollector):
            crd = await client.create(crds, widget_crd(group))
            widgets = next(rt for rt in resource_types(crd) if rt.version == "v1")
            owner = await client.create(widgets, widget(group, "owner"), name)
            reference = {
                "apiVersion": f"{group}/v1beta1",  # any served version names the owner
                "kind": "Widget",
                "name": "owner",
                "uid": owner["metadata"]["uid"],
            }
            owned = {"metadata": {"name": "owned", "ownerReferences": [reference]}}
            await client.create(configmaps, owned, name)
            holder = await client.create(configmaps, {"metadata": {"name": "holder"}}, name)
            dependent = widget(group, "dependent")
            dependent["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "holder",
                    "uid": holder["metadata"]["uid"],
                }
            ]
            await client.create(widgets, dependent, name)

            await client.delete(widgets, "owner", name)
            await client.delete(configmaps, "holder", name)

            async def gone(rt: ResourceType, object_name: str) -> bool:
                try:
                    await client.get(rt, object_name, name)
                except ApiError as error:
                    return error.code == 404
                return False

            await eventually(lambda: gone(configmaps, "owned"), message="the owned ConfigMap")
            await eventually(lambda: gone(widgets, "dependent"), message="the dependent Widget")
    finally:
        await client.delete(crds, f"widgets.{group}")
        await client.delete(namespaces, name)


def _post_raw(cluster: LocalCluster, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Bytes as they are: too deep a document for the clients' own encoders."""
    context = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    context.load_cert_chain(str(cluster.pki.admin_cert), str(cluster.pki.admin_key))
    request = urllib.request.Request(
        f"{cluster.url}{path}", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("depth", [60, 5000])
def test_a_schema_nested_deeper_than_anyone_writes_gets_a_clear_answer(
    api_client: k8s.ApiClient, group: str, cluster: LocalCluster, depth: int
) -> None:
    """What a fuzzer builds from free-form JSON: an answer, never a 500 or a stalled server."""
    crd = widget_crd(group)
    for version in crd["spec"]["versions"]:
        version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["deep"] = "@"
    # Written as text: Python's own encoder gives up long before 5,000 levels.
    nested = '{"type":"object","properties":{"x":' * depth + '{"type":"string"}' + "}}" * depth
    body = json.dumps(crd).replace('"@"', nested).encode()
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    status, answer = _post_raw(cluster, path, body)
    if depth > 1000:
        assert 400 <= status < 500, answer
        assert answer["kind"] == "Status" and answer["message"], answer
    else:
        assert status == 201, answer
    # The server still answers.
    k8s.ApiextensionsV1Api(api_client).list_custom_resource_definition()
