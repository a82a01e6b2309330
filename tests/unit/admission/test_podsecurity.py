"""Pod Security admission: each rule, the full message, levels from namespace labels."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from controlplane.admission.podsecurity import (
    ENFORCE_LABEL,
    PodSecurityConfig,
    admit,
    check,
    level_for,
)
from corral.objects import Obj


def spec(**fields: Any) -> Obj:
    body: Obj = {"containers": [{"name": "c", "image": "nginx"}]}
    body.update(fields)
    return body


def restricted_spec() -> Obj:
    """A pod that meets the restricted level."""
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "c",
                "image": "nginx",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "volumes": [{"name": "cfg", "configMap": {"name": "x"}}],
    }


def with_container_security(body: Obj, **context: Any) -> Obj:
    body = copy.deepcopy(body)
    body["containers"][0].setdefault("securityContext", {}).update(context)
    return body


def pod(body: Obj, name: str = "web") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": body,
    }


def labels(level: str) -> dict[str, str]:
    return {ENFORCE_LABEL: level}


# --- baseline ---------------------------------------------------------------------------

BASELINE_CASES: list[tuple[str, Callable[[], Obj], str]] = [
    (
        "privileged",
        lambda: with_container_security(spec(), privileged=True),
        'privileged (container "c" must not set securityContext.privileged=true)',
    ),
    ("hostNetwork", lambda: spec(hostNetwork=True), "host namespaces (hostNetwork=true)"),
    (
        "all host namespaces",
        lambda: spec(hostNetwork=True, hostPID=True, hostIPC=True),
        "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
    ),
    (
        "hostPath",
        lambda: spec(volumes=[{"name": "data", "hostPath": {"path": "/var"}}]),
        'hostPath volumes (volume "data")',
    ),
    (
        "two hostPaths",
        lambda: spec(
            volumes=[
                {"name": "a", "hostPath": {"path": "/a"}},
                {"name": "ok", "emptyDir": {}},
                {"name": "b", "hostPath": {"path": "/b"}},
            ]
        ),
        'hostPath volumes (volumes "a", "b")',
    ),
    (
        "hostPort",
        lambda: spec(
            containers=[
                {"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}
            ]
        ),
        'hostPort (container "c" uses hostPort 8080)',
    ),
    (
        "hostPorts in two containers",
        lambda: spec(
            containers=[
                {"name": "a", "image": "i", "ports": [{"containerPort": 80, "hostPort": 80}]},
                {"name": "b", "image": "i", "ports": [{"containerPort": 443, "hostPort": 443}]},
            ]
        ),
        'hostPort (containers "a", "b" use hostPorts 443, 80)',
    ),
    (
        "capabilities",
        lambda: with_container_security(
            spec(), capabilities={"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]}
        ),
        'non-default capabilities (container "c" must not include "NET_ADMIN", "SYS_ADMIN" '
        "in securityContext.capabilities.add)",
    ),
    (
        "seccomp unconfined on a container",
        lambda: with_container_security(spec(), seccompProfile={"type": "Unconfined"}),
        'seccompProfile (container "c" must not set securityContext.seccompProfile.type to '
        '"Unconfined")',
    ),
    (
        "seccomp unconfined on the pod",
        lambda: spec(securityContext={"seccompProfile": {"type": "Unconfined"}}),
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
    ),
    (
        "sysctls",
        lambda: spec(
            securityContext={
                "sysctls": [
                    {"name": "kernel.msgmax", "value": "1"},
                    {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                    {"name": "vm.swappiness", "value": "1"},
                ]
            }
        ),
        "forbidden sysctls (kernel.msgmax, vm.swappiness)",
    ),
    (
        "procMount",
        lambda: with_container_security(spec(), procMount="Unmasked"),
        'procMount (container "c" must not set securityContext.procMount to "Unmasked")',
    ),
]


@pytest.mark.parametrize(
    ("case", "build", "expected"), BASELINE_CASES, ids=[c[0] for c in BASELINE_CASES]
)
def test_baseline_rule(case: str, build: Callable[[], Obj], expected: str) -> None:
    assert check(build(), "baseline") == [expected]


@pytest.mark.parametrize(
    ("case", "build", "expected"), BASELINE_CASES, ids=[c[0] for c in BASELINE_CASES]
)
def test_privileged_allows_everything(case: str, build: Callable[[], Obj], expected: str) -> None:
    assert check(build(), "privileged") == []


def test_baseline_allows_an_ordinary_pod() -> None:
    body = spec(
        volumes=[{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x"}}],
        securityContext={"sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1 2"}]},
    )
    body = with_container_security(
        body,
        capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"]},
        seccompProfile={"type": "RuntimeDefault"},
        procMount="Default",
        privileged=False,
    )
    assert check(body, "baseline") == []


def test_init_containers_are_checked_first() -> None:
    body = spec(
        initContainers=[{"name": "init", "image": "i", "securityContext": {"privileged": True}}]
    )
    body = with_container_security(body, privileged=True)
    assert check(body, "baseline") == [
        'privileged (containers "init", "c" must not set securityContext.privileged=true)'
    ]


# --- restricted ------------------------------------------------------------------------------


def test_restricted_allows_a_hardened_pod() -> None:
    assert check(restricted_spec(), "restricted") == []


def test_restricted_ordinary_pod_lists_every_rule() -> None:
    assert check(spec(), "restricted") == [
        'allowPrivilegeEscalation != false (container "c" must set '
        "securityContext.allowPrivilegeEscalation=false)",
        'unrestricted capabilities (container "c" must set '
        'securityContext.capabilities.drop=["ALL"])',
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true)',
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")',
    ]


def test_allow_privilege_escalation_true() -> None:
    body = with_container_security(restricted_spec(), allowPrivilegeEscalation=True)
    assert check(body, "restricted") == [
        'allowPrivilegeEscalation != false (container "c" must set '
        "securityContext.allowPrivilegeEscalation=false)"
    ]


def test_only_net_bind_service_may_be_added() -> None:
    ok = with_container_security(
        restricted_spec(), capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    )
    assert check(ok, "restricted") == []
    bad = with_container_security(
        restricted_spec(), capabilities={"drop": ["ALL"], "add": ["CHOWN"]}
    )
    assert check(bad, "restricted") == [
        'unrestricted capabilities (container "c" must not include "CHOWN" in '
        "securityContext.capabilities.add)"
    ]


def test_restricted_capabilities_replace_the_baseline_check() -> None:
    body = with_container_security(restricted_spec(), capabilities={"add": ["SYS_ADMIN"]})
    assert check(body, "restricted") == [
        'unrestricted capabilities (container "c" must set '
        'securityContext.capabilities.drop=["ALL"]; '
        'container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add)'
    ]


def test_run_as_non_root_false() -> None:
    body = restricted_spec()
    body["securityContext"]["runAsNonRoot"] = False
    body = with_container_security(body, runAsNonRoot=False)
    assert check(body, "restricted") == [
        'runAsNonRoot != true (pod and container "c" must not set '
        "securityContext.runAsNonRoot=false)"
    ]


def test_run_as_non_root_on_every_container_is_enough() -> None:
    body = restricted_spec()
    del body["securityContext"]["runAsNonRoot"]
    assert check(body, "restricted") == [
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true)'
    ]
    assert check(with_container_security(body, runAsNonRoot=True), "restricted") == []


def test_run_as_user_zero() -> None:
    body = restricted_spec()
    body["securityContext"]["runAsUser"] = 0
    assert check(body, "restricted") == ["runAsUser=0 (pod must not set runAsUser=0)"]
    body = with_container_security(restricted_spec(), runAsUser=0)
    assert check(body, "restricted") == ['runAsUser=0 (container "c" must not set runAsUser=0)']


def test_seccomp_localhost_is_fine_and_unconfined_is_not() -> None:
    body = restricted_spec()
    body["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": "p.json"}
    assert check(body, "restricted") == []
    bad = with_container_security(restricted_spec(), seccompProfile={"type": "Unconfined"})
    assert check(bad, "restricted") == [
        'seccompProfile (container "c" must not set securityContext.seccompProfile.type to '
        '"Unconfined")'
    ]


def test_restricted_volume_types() -> None:
    body = restricted_spec()
    body["volumes"].append({"name": "data", "hostPath": {"path": "/srv"}})
    assert check(body, "restricted") == [
        'hostPath volumes (volume "data")',
        'restricted volume types (volume "data" uses restricted volume type "hostPath")',
    ]


def test_restricted_includes_baseline_first() -> None:
    body = with_container_security(restricted_spec(), privileged=True)
    body["hostPID"] = True
    assert check(body, "restricted") == [
        "host namespaces (hostPID=true)",
        'privileged (container "c" must not set securityContext.privileged=true)',
    ]


# --- admission -----------------------------------------------------------------------------


def test_full_message_with_several_violations() -> None:
    body = with_container_security(
        spec(volumes=[{"name": "data", "hostPath": {"path": "/var/lib/data"}}]), privileged=True
    )
    error = admit("Pod", pod(body), {})
    assert error is not None
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == (
        'pods "web" is forbidden: violates PodSecurity "baseline:latest": '
        'hostPath volumes (volume "data"), '
        'privileged (container "c" must not set securityContext.privileged=true)'
    )
    assert error.to_status()["details"] == {"name": "web", "kind": "pods"}


def test_unlabelled_namespace_is_baseline() -> None:
    assert admit("Pod", pod(spec()), None) is None
    assert admit("Pod", pod(spec(hostNetwork=True)), None) is not None


def test_privileged_namespace_allows_host_path() -> None:
    body = spec(volumes=[{"name": "data", "hostPath": {"path": "/var"}}])
    assert admit("Pod", pod(body), labels("privileged")) is None
    assert admit("Pod", pod(body), labels("baseline")) is not None


def test_restricted_namespace() -> None:
    error = admit("Pod", pod(spec()), labels("restricted"))
    assert error is not None
    assert 'violates PodSecurity "restricted:latest"' in error.message
    assert admit("Pod", pod(restricted_spec()), labels("restricted")) is None


def test_unknown_level_fails_closed_to_restricted() -> None:
    assert level_for(labels("bogus")) == "restricted"
    assert admit("Pod", pod(spec()), labels("bogus")) is not None


def test_check_with_an_unknown_level_is_restricted() -> None:
    assert check(spec(), "nonsense") == check(spec(), "restricted")


def test_configured_default_level() -> None:
    assert level_for({}, "restricted") == "restricted"
    config = PodSecurityConfig(default_level="privileged")
    assert admit("Pod", pod(spec(hostNetwork=True)), {}, config=config) is None


def test_exempt_namespaces() -> None:
    config = PodSecurityConfig(exempt_namespaces=frozenset({"prod"}))
    assert admit("Pod", pod(spec(hostNetwork=True)), {}, config=config) is None


@pytest.mark.parametrize(
    ("kind", "qualified"),
    [
        ("Deployment", "deployments.apps"),
        ("ReplicaSet", "replicasets.apps"),
        ("ReplicationController", "replicationcontrollers"),
    ],
)
def test_templates_are_refused_too(kind: str, qualified: str) -> None:
    obj = {
        "kind": kind,
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"replicas": 2, "template": {"metadata": {}, "spec": spec(hostPID=True)}},
    }
    error = admit(kind, obj, {})
    assert error is not None
    assert error.message == (
        f'{qualified} "web" is forbidden: violates PodSecurity "baseline:latest": '
        "host namespaces (hostPID=true)"
    )


def test_other_kinds_are_not_checked() -> None:
    assert admit("Service", {"metadata": {"name": "s"}, "spec": {"hostNetwork": True}}, {}) is None
    assert admit("Deployment", {"metadata": {"name": "d"}, "spec": {}}, {}) is None


def test_subresource_writes_are_not_checked() -> None:
    assert admit("Pod", pod(spec(hostNetwork=True)), {}, subresource="status") is None


def test_pod_update_without_new_images_is_not_rechecked() -> None:
    old = pod(spec(hostNetwork=True))
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"a": "b"}
    assert admit("Pod", new, {}, old=old) is None
    new["spec"]["containers"][0]["image"] = "nginx:2"
    assert admit("Pod", new, {}, old=old) is not None


def test_workload_update_is_rechecked_only_when_the_template_changes() -> None:
    old: Obj = {
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "prod"},
        "spec": {"replicas": 1, "template": {"spec": spec(hostIPC=True)}},
    }
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 3
    assert admit("Deployment", scaled, {}, old=old) is None
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    assert admit("Deployment", changed, {}, old=old) is not None


def test_generate_name_pod_without_a_name_yet() -> None:
    obj = pod(spec(hostNetwork=True))
    del obj["metadata"]["name"]
    error = admit("Pod", obj, {})
    assert error is not None
    assert error.message.startswith("pods is forbidden: violates PodSecurity")
