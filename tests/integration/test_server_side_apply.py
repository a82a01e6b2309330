"""Server-side apply with the real kubectl and the official Python client.

PATCH application/apply-patch+yaml: create on apply, no change on a repeated
apply, conflicts naming the field and its manager (409), --force-conflicts,
pruning of fields the applier drops, dry runs and kubectl diff, and the
Update entries other writers leave in metadata.managedFields.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from tests.conftest import LocalCluster

APPLY = "application/apply-patch+yaml"


def kubectl(
    env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _deployment(replicas: int, *, label: str | None = None) -> str:
    labels = {"app": "web", **({"tier": label} if label else {})}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
                },
            },
        }
    )


def _get(env: dict[str, str], ns: str, what: str = "deployment/web") -> dict[str, Any]:
    out = kubectl(env, "get", what, "-n", ns, "-o", "json", "--show-managed-fields")
    return dict(json.loads(out.stdout))


def _owners(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def test_kubectl_server_side_apply_twice_changes_nothing(
    kubectl_env: dict[str, str], namespace: str
) -> None:
    ns = ["-n", namespace]
    first = kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(2))
    assert first.stdout.strip() == "deployment.apps/web serverside-applied"
    before = _get(kubectl_env, namespace)
    second = kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(2))
    assert second.stdout.strip() == "deployment.apps/web serverside-applied"
    after = _get(kubectl_env, namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    entry = _owners(after)[("kubectl", "Apply")]
    assert entry["apiVersion"] == "apps/v1" and entry["fieldsType"] == "FieldsV1"
    fields = entry["fieldsV1"]
    assert "f:replicas" in fields["f:spec"]
    containers = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert containers == {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}


def test_a_second_manager_conflicts_until_it_forces(
    kubectl_env: dict[str, str], namespace: str
) -> None:
    ns = ["-n", namespace]
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(2))
    refused = kubectl(
        kubectl_env,
        "apply",
        "--server-side",
        "--field-manager=scaler",
        "-f",
        "-",
        *ns,
        stdin=_deployment(5),
        check=False,
    )
    assert refused.returncode != 0
    assert 'conflict with "kubectl": .spec.replicas' in refused.stderr, refused.stderr
    assert _get(kubectl_env, namespace)["spec"]["replicas"] == 2

    kubectl(
        kubectl_env,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=scaler",
        "-f",
        "-",
        *ns,
        stdin=_deployment(5),
    )
    forced = _get(kubectl_env, namespace)
    assert forced["spec"]["replicas"] == 5
    owners = _owners(forced)
    assert "f:replicas" in owners[("scaler", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in owners[("kubectl", "Apply")]["fieldsV1"]["f:spec"]


def test_client_side_apply_then_server_side_apply_conflicts_with_its_update(
    kubectl_env: dict[str, str], namespace: str
) -> None:
    ns = ["-n", namespace]
    kubectl(kubectl_env, "apply", "-f", "-", *ns, stdin=_deployment(2))
    owners = _owners(_get(kubectl_env, namespace))
    assert owners[("kubectl-client-side-apply", "Update")]["apiVersion"] == "apps/v1"
    refused = kubectl(
        kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(3), check=False
    )
    assert (
        'conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas' in refused.stderr
    ), refused.stderr


def test_fields_an_applier_drops_are_removed(kubectl_env: dict[str, str], namespace: str) -> None:
    ns = ["-n", namespace]
    labelled = _deployment(1, label="front")
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=labelled)
    assert _get(kubectl_env, namespace)["metadata"]["labels"]["tier"] == "front"
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(1))
    assert "tier" not in _get(kubectl_env, namespace)["metadata"]["labels"]


def test_kubectl_diff_uses_a_dry_run_apply(
    kubectl_env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    ns = ["-n", namespace]
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(2))
    version = _get(kubectl_env, namespace)["metadata"]["resourceVersion"]
    changed = tmp_path / "web.json"
    changed.write_text(_deployment(4))
    for mode in ("--server-side", "--server-side=false"):
        diff = kubectl(kubectl_env, "diff", mode, "-f", str(changed), *ns, check=False)
        assert diff.returncode == 1, diff.stderr  # 1: differences found
        assert "-  replicas: 2" in diff.stdout and "+  replicas: 4" in diff.stdout
    same = tmp_path / "same.json"
    same.write_text(_deployment(2))
    assert (
        kubectl(kubectl_env, "diff", "--server-side", "-f", str(same), *ns, check=False).returncode
        == 0
    )
    assert _get(kubectl_env, namespace)["metadata"]["resourceVersion"] == version


def test_kubectl_create_records_an_update_manager(
    kubectl_env: dict[str, str], namespace: str
) -> None:
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
    settings["data"] = {"a": "1"}
    kubectl(kubectl_env, "create", "-f", "-", "-n", namespace, stdin=json.dumps(settings))
    obj = _get(kubectl_env, namespace, "configmap/settings")
    entry = _owners(obj)[("kubectl-create", "Update")]
    assert entry["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert entry["time"].endswith("Z")


# --- the official Python client ----------------------------------------------------------


def _core(cluster: LocalCluster) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def _config_map(value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"mode": value},
    }


def test_python_client_applies_conflicts_and_forces(cluster: LocalCluster, namespace: str) -> None:
    api = _core(cluster)
    created = api.patch_namespaced_config_map(
        "settings", namespace, _config_map("a"), field_manager="ops", _content_type=APPLY
    )
    assert created.data == {"mode": "a"}
    assert [(e.manager, e.operation) for e in created.metadata.managed_fields] == [("ops", "Apply")]
    again = api.patch_namespaced_config_map(
        "settings", namespace, _config_map("a"), field_manager="ops", _content_type=APPLY
    )
    assert again.metadata.resource_version == created.metadata.resource_version

    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_config_map(
            "settings", namespace, _config_map("b"), field_manager="dev", _content_type=APPLY
        )
    assert refused.value.status == 409
    status = json.loads(refused.value.body)
    assert status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "ops": .data.mode'
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "ops"', "field": ".data.mode"}
    ]

    forced = api.patch_namespaced_config_map(
        "settings",
        namespace,
        _config_map("b"),
        field_manager="dev",
        force=True,
        _content_type=APPLY,
    )
    assert forced.data == {"mode": "b"}
    assert [e.manager for e in forced.metadata.managed_fields] == ["dev"]


def test_python_client_apply_needs_a_field_manager_and_honours_dry_run(
    cluster: LocalCluster, namespace: str
) -> None:
    api = _core(cluster)
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_config_map(
            "settings", namespace, _config_map("a"), _content_type=APPLY
        )
    assert refused.value.status == 422
    status = json.loads(refused.value.body)
    assert status["details"]["causes"][0]["field"] == "fieldManager"

    dry = api.patch_namespaced_config_map(
        "settings",
        namespace,
        _config_map("a"),
        field_manager="ops",
        dry_run="All",
        _content_type=APPLY,
    )
    assert dry.data == {"mode": "a"}
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_config_map("settings", namespace)
    assert missing.value.status == 404


def test_python_client_updates_are_recorded_under_its_user_agent(
    cluster: LocalCluster, namespace: str
) -> None:
    api = _core(cluster)
    api.create_namespaced_config_map(namespace, _config_map("a"))
    patched = api.patch_namespaced_config_map(
        "settings", namespace, {"data": {"extra": "1"}}, field_manager="patcher"
    )
    owners = {(e.manager, e.operation): e for e in patched.metadata.managed_fields}
    assert set(owners) == {("OpenAPI-Generator", "Update"), ("patcher", "Update")}
    assert owners[("patcher", "Update")].fields_v1 == {"f:data": {"f:extra": {}}}


# --- client-side apply, run twice ----------------------------------------------------------

EXAMPLE_SOURCE = Path(__file__).resolve().parents[2] / "examples" / "gluster.json"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The example stack with its NodePort left to the allocator: the session's
    cluster is shared, and another test's copy may hold port 30080."""
    document = json.loads(EXAMPLE_SOURCE.read_text())
    for item in document["items"]:
        for port in item.get("spec", {}).get("ports", []) if item["kind"] == "Service" else []:
            port.pop("nodePort", None)
    path = tmp_path / "gluster.json"
    path.write_text(json.dumps(document))
    return path


def test_a_second_client_side_apply_changes_no_object(
    kubectl_env: dict[str, str], namespace: str, example: Path
) -> None:
    """Every kind of the example stack, a PodDisruptionBudget among them, applied twice.

    kubectl reports `configured` only where it re-sends a patch by design,
    as against kube-apiserver: a Secret's write-only stringData, and a PDB's
    selector (patch strategy `replace` in kubectl's compiled-in types). Even
    those patches change nothing: no object gets a new resourceVersion.
    """
    ns = ["-n", namespace]
    items = json.loads(example.read_text())["items"]
    kubectl(kubectl_env, "apply", "-f", str(example), *ns)
    listed = "secret,configmap,service,statefulset,deployment,rc,pdb"
    before = json.loads(kubectl(kubectl_env, "get", listed, "-o", "json", *ns).stdout)
    second = kubectl(kubectl_env, "apply", "-f", str(example), *ns)
    lines = second.stdout.splitlines()
    assert len(lines) == len(items)
    for line in lines:
        if line.startswith(("secret/mariadb-credentials ", "poddisruptionbudget.policy/")):
            continue
        assert line.endswith(" unchanged"), line
    after = json.loads(kubectl(kubectl_env, "get", listed, "-o", "json", *ns).stdout)

    def versions(listing: dict[str, Any]) -> dict[str, str]:
        return {
            f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
            for i in listing["items"]
        }

    assert len(versions(before)) == len(items)
    assert versions(after) == versions(before)
    owners = _owners(_get(kubectl_env, namespace, "pdb/mariadb"))
    assert ("kubectl-client-side-apply", "Update") in owners


def test_server_side_apply_of_the_example_stack_twice_changes_nothing(
    kubectl_env: dict[str, str], namespace: str, example: Path
) -> None:
    ns = ["-n", namespace]
    items = json.loads(example.read_text())["items"]
    first = kubectl(kubectl_env, "apply", "--server-side", "-f", str(example), *ns)
    assert len(first.stdout.splitlines()) == len(items)
    listed = "secret,configmap,service,statefulset,deployment,rc,pdb"
    before = json.loads(kubectl(kubectl_env, "get", listed, "-o", "json", *ns).stdout)
    second = kubectl(kubectl_env, "apply", "--server-side", "-f", str(example), *ns)
    assert all(line.endswith(" serverside-applied") for line in second.stdout.splitlines())
    after = json.loads(kubectl(kubectl_env, "get", listed, "-o", "json", *ns).stdout)
    assert [i["metadata"]["resourceVersion"] for i in after["items"]] == [
        i["metadata"]["resourceVersion"] for i in before["items"]
    ]


def test_server_side_apply_takes_over_from_client_side_apply(
    kubectl_env: dict[str, str], namespace: str
) -> None:
    """kubectl moves client-side apply's fields to its server-side manager (a JSON
    patch of managedFields), which the server honours as kube-apiserver does."""
    ns = ["-n", namespace]
    kubectl(kubectl_env, "apply", "-f", "-", *ns, stdin=_deployment(2))
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(2))
    owners = _owners(_get(kubectl_env, namespace))
    assert ("kubectl", "Apply") in owners
    assert ("kubectl-client-side-apply", "Update") not in owners
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(3))
    assert _get(kubectl_env, namespace)["spec"]["replicas"] == 3


def test_server_side_apply_of_a_custom_resource(
    kubectl_env: dict[str, str], namespace: str, cluster: LocalCluster
) -> None:
    from tests.integration.test_crd import widget, widget_crd

    group = f"ssa-{namespace}.corral.test"
    extensions = k8s.ApiextensionsV1Api(
        k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    )
    extensions.create_custom_resource_definition(widget_crd(group))
    try:
        ns = ["-n", namespace]
        config = json.dumps(widget(group, "w1", replicas=2))
        for _ in range(20):  # discovery follows the new CRD at once, kubectl's cache may not
            applied = kubectl(
                kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=config, check=False
            )
            if applied.returncode == 0:
                break
            time.sleep(0.5)
        assert applied.stdout.strip() == f"widget.{group}/w1 serverside-applied", applied.stderr
        before = _get(kubectl_env, namespace, f"widgets.{group}/w1")
        assert before["spec"] == {"image": "nginx:1", "replicas": 2, "size": "small"}
        kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=config)
        after = _get(kubectl_env, namespace, f"widgets.{group}/w1")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        other = json.dumps(widget(group, "w1", replicas=3))
        refused = kubectl(
            kubectl_env,
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            "-",
            *ns,
            stdin=other,
            check=False,
        )
        assert 'conflict with "kubectl": .spec.replicas' in refused.stderr, refused.stderr
    finally:
        extensions.delete_custom_resource_definition(f"widgets.{group}")


def test_a_replace_takes_the_fields_it_changes_from_the_applier(
    cluster: LocalCluster, namespace: str
) -> None:
    api = _core(cluster)
    api.patch_namespaced_config_map(
        "settings", namespace, _config_map("a"), field_manager="ops", _content_type=APPLY
    )
    current = api.read_namespaced_config_map("settings", namespace)
    current.data = {"mode": "b"}
    replaced = api.replace_namespaced_config_map("settings", namespace, current)
    owners = {(e.manager, e.operation): e.fields_v1 for e in replaced.metadata.managed_fields}
    assert owners == {("OpenAPI-Generator", "Update"): {"f:data": {"f:mode": {}}}}
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_config_map(
            "settings", namespace, _config_map("c"), field_manager="ops", _content_type=APPLY
        )
    assert json.loads(refused.value.body)["message"] == (
        'Apply failed with 1 conflict: conflict with "OpenAPI-Generator" using v1: .data.mode'
    )


def test_dry_runs_create_nothing_and_force_is_only_for_apply(
    kubectl_env: dict[str, str], namespace: str, cluster: LocalCluster, tmp_path: Path
) -> None:
    ns = ["-n", namespace]
    new = tmp_path / "web.json"
    new.write_text(_deployment(2))
    diff = kubectl(kubectl_env, "diff", "--server-side", "-f", str(new), *ns, check=False)
    assert diff.returncode == 1 and "+  replicas: 2" in diff.stdout, diff.stderr
    dry = kubectl(kubectl_env, "apply", "--server-side", "--dry-run=server", "-f", str(new), *ns)
    assert dry.stdout.strip() == "deployment.apps/web serverside-applied (server dry run)"
    missing = kubectl(kubectl_env, "get", "deployment/web", *ns, check=False)
    assert "NotFound" in missing.stderr

    api = _core(cluster)
    api.create_namespaced_config_map(namespace, _config_map("a"))
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_config_map("settings", namespace, {"data": {"x": "1"}}, force=True)
    assert refused.value.status == 422
    assert json.loads(refused.value.body)["details"]["causes"][0]["field"] == "force"


def test_kubectl_scale_takes_replicas_from_the_applier(
    kubectl_env: dict[str, str], namespace: str
) -> None:
    """Scaling records an Update entry for the scale subresource (as an autoscaler's
    would), so the next apply of another replica count conflicts instead of undoing it."""
    ns = ["-n", namespace]
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(2))
    kubectl(kubectl_env, "scale", "deployment/web", "--replicas=4", *ns)
    scaled = _get(kubectl_env, namespace)
    scale_entry = next(
        e for e in scaled["metadata"]["managedFields"] if e.get("subresource") == "scale"
    )
    assert (scale_entry["manager"], scale_entry["operation"]) == ("kubectl", "Update")
    assert scale_entry["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    refused = kubectl(
        kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(2), check=False
    )
    assert (
        'conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas'
        in refused.stderr
    ), refused.stderr
    assert _get(kubectl_env, namespace)["spec"]["replicas"] == 4


def test_status_writes_are_recorded_apart_and_never_conflict_with_an_apply(
    kubectl_env: dict[str, str], namespace: str, cluster: LocalCluster
) -> None:
    ns = ["-n", namespace]
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(2))
    apps = k8s.AppsV1Api(k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    written = apps.patch_namespaced_deployment_status(
        "web",
        namespace,
        {"status": {"observedGeneration": 1, "replicas": 2}},
        field_manager="deployment-controller",
    )
    assert written.status.replicas == 2
    entries = {(e.manager, e.operation, e.subresource): e for e in written.metadata.managed_fields}
    status_entry = entries[("deployment-controller", "Update", "status")]
    assert status_entry.fields_v1 == {"f:status": {"f:observedGeneration": {}, "f:replicas": {}}}
    assert ("kubectl", "Apply", None) in entries
    kubectl(kubectl_env, "apply", "--server-side", "-f", "-", *ns, stdin=_deployment(3))
    assert _get(kubectl_env, namespace)["status"]["replicas"] == 2


def test_a_cluster_scoped_object_applied_twice(kubectl_env: dict[str, str], namespace: str) -> None:
    name = f"{namespace}-applied"
    config = json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"a": "1"}}}
    )
    try:
        kubectl(kubectl_env, "apply", "--server-side", "-f", "-", stdin=config)
        before = _get(kubectl_env, namespace, f"namespace/{name}")
        kubectl(kubectl_env, "apply", "--server-side", "-f", "-", stdin=config)
        after = _get(kubectl_env, namespace, f"namespace/{name}")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["metadata"]["labels"]["a"] == "1"
        assert "namespace" not in after["metadata"]
    finally:
        kubectl(kubectl_env, "delete", "namespace", name, "--wait=false", check=False)


def test_corral_get_hides_managed_fields_unless_asked_as_kubectl_does(
    cluster: LocalCluster, namespace: str
) -> None:
    _core(cluster).create_namespaced_config_map(namespace, _config_map("shown"))
    command = [str(Path(sys.executable).parent / "corral")]
    where = ["get", "configmap", "settings", "-n", namespace, "-o", "json"]
    where += ["--kubeconfig", str(cluster.kubeconfig)]

    def get(*extra: str) -> dict[str, Any]:
        done = subprocess.run(
            [*command, *where, *extra], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    assert "managedFields" not in get()["metadata"]
    assert get("--show-managed-fields")["metadata"]["managedFields"][0]["operation"] == "Update"
