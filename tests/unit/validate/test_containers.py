"""Containers: names, images, ports, environment, mounts, probes, handlers, security."""

from __future__ import annotations

import pytest

from .builders import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    NOT_SUPPORTED,
    REQUIRED,
    Mutation,
    append,
    both,
    causes_of,
    drop,
    mutated,
    put,
    validate,
)

C0 = "spec/containers/0"
P0 = "spec.containers[0]"

CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("no containers", put("spec/containers", []), [("spec.containers", REQUIRED)]),
    ("bad container name", put(f"{C0}/name", "Web"), [(f"{P0}.name", INVALID)]),
    ("missing image", drop(f"{C0}/image"), [(f"{P0}.image", REQUIRED)]),
    ("image with spaces", put(f"{C0}/image", " nginx "), [(f"{P0}.image", INVALID)]),
    (
        "duplicate container name",
        put("spec/containers/1/name", "web"),
        [("spec.containers[1].name", DUPLICATE)],
    ),
    (
        "init container named like a container",
        put("spec/initContainers/0/name", "sidecar"),
        [("spec.initContainers[0].name", DUPLICATE)],
    ),
    (
        "port zero",
        put(f"{C0}/ports/0/containerPort", 0),
        [(f"{P0}.ports[0].containerPort", REQUIRED)],
    ),
    (
        "port too big",
        put(f"{C0}/ports/0/containerPort", 65536),
        [(f"{P0}.ports[0].containerPort", INVALID)],
    ),
    (
        "host port negative",
        put(f"{C0}/ports/0/hostPort", -1),
        [(f"{P0}.ports[0].hostPort", INVALID)],
    ),
    ("bad port name", put(f"{C0}/ports/0/name", "http--alt"), [(f"{P0}.ports[0].name", INVALID)]),
    (
        "duplicate port name",
        append(f"{C0}/ports", {"name": "http", "containerPort": 8081}),
        [(f"{P0}.ports[1].name", DUPLICATE)],
    ),
    (
        "host port used twice",
        put(f"{C0}/ports/0/hostPort", 9090),
        [("spec.containers[1].ports[0].hostPort", DUPLICATE)],
    ),
    (
        "same host port on another protocol",
        both(put(f"{C0}/ports/0/hostPort", 9090), put(f"{C0}/ports/0/protocol", "UDP")),
        [],
    ),
    ("bad env name", put(f"{C0}/env/0/name", "1MODE"), [(f"{P0}.env[0].name", INVALID)]),
    ("empty env name", put(f"{C0}/env/0/name", ""), [(f"{P0}.env[0].name", REQUIRED)]),
    (
        "valueFrom with nothing",
        put(f"{C0}/env/1/valueFrom", {}),
        [(f"{P0}.env[1].valueFrom", INVALID)],
    ),
    (
        "valueFrom and value",
        put(f"{C0}/env/1/value", "x"),
        [(f"{P0}.env[1].valueFrom", INVALID)],
    ),
    (
        "valueFrom with two sources",
        put(f"{C0}/env/1/valueFrom/configMapKeyRef", {"name": "cm", "key": "k"}),
        [(f"{P0}.env[1].valueFrom", INVALID)],
    ),
    (
        "unsupported fieldRef",
        put(f"{C0}/env/1/valueFrom/fieldRef/fieldPath", "status.phase"),
        [(f"{P0}.env[1].valueFrom.fieldRef.fieldPath", NOT_SUPPORTED)],
    ),
    (
        "unknown fieldRef",
        put(f"{C0}/env/1/valueFrom/fieldRef/fieldPath", "spec.nope"),
        [(f"{P0}.env[1].valueFrom.fieldRef.fieldPath", INVALID)],
    ),
    (
        "label subscript in fieldRef",
        put(f"{C0}/env/1/valueFrom/fieldRef/fieldPath", "metadata.labels['app']"),
        [],
    ),
    (
        "secret key with slash",
        put(f"{C0}/env/2/valueFrom/secretKeyRef/key", "a/b"),
        [(f"{P0}.env[2].valueFrom.secretKeyRef.key", INVALID)],
    ),
    (
        "resourceFieldRef divisor",
        put(
            f"{C0}/env/1/valueFrom",
            {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1Mi"}},
        ),
        [(f"{P0}.env[1].valueFrom.resourceFieldRef.divisor", INVALID)],
    ),
    (
        "envFrom with no source",
        put(f"{C0}/envFrom/0", {"prefix": "X_"}),
        [(f"{P0}.envFrom[0]", INVALID)],
    ),
    (
        "mount of a missing volume",
        put(f"{C0}/volumeMounts/0/name", "nope"),
        [(f"{P0}.volumeMounts[0].name", NOT_FOUND)],
    ),
    (
        "relative mount path",
        put(f"{C0}/volumeMounts/0/mountPath", "etc/web"),
        [(f"{P0}.volumeMounts[0].mountPath", INVALID)],
    ),
    (
        "empty mount path",
        put(f"{C0}/volumeMounts/0/mountPath", ""),
        [(f"{P0}.volumeMounts[0].mountPath", REQUIRED)],
    ),
    (
        "mount path used twice",
        put(f"{C0}/volumeMounts/1/mountPath", "/etc/web"),
        [(f"{P0}.volumeMounts[1].mountPath", INVALID)],
    ),
    (
        "absolute subPath",
        put(f"{C0}/volumeMounts/1/subPath", "/web"),
        [(f"{P0}.volumeMounts[1].subPath", INVALID)],
    ),
    (
        "subPath climbing out",
        put(f"{C0}/volumeMounts/1/subPath", "web/../../etc"),
        [(f"{P0}.volumeMounts[1].subPath", INVALID)],
    ),
    (
        "bidirectional propagation unprivileged",
        put(f"{C0}/volumeMounts/1/mountPropagation", "Bidirectional"),
        [(f"{P0}.volumeMounts[1].mountPropagation", FORBIDDEN)],
    ),
    (
        "probe with two handlers",
        put(f"{C0}/livenessProbe/exec", {"command": ["true"]}),
        [(f"{P0}.livenessProbe.httpGet", FORBIDDEN)],
    ),
    ("probe with no handler", put(f"{C0}/livenessProbe", {}), [(f"{P0}.livenessProbe", REQUIRED)]),
    (
        "exec without command",
        put(f"{C0}/livenessProbe", {"exec": {}}),
        [(f"{P0}.livenessProbe.exec.command", REQUIRED)],
    ),
    (
        "liveness success threshold",
        put(f"{C0}/livenessProbe/successThreshold", 2),
        [(f"{P0}.livenessProbe.successThreshold", INVALID)],
    ),
    ("readiness success threshold", put(f"{C0}/readinessProbe/successThreshold", 3), []),
    (
        "zero period",
        put(f"{C0}/readinessProbe/periodSeconds", 0),
        [(f"{P0}.readinessProbe.periodSeconds", INVALID)],
    ),
    (
        "negative timeout",
        put(f"{C0}/readinessProbe/timeoutSeconds", -1),
        [(f"{P0}.readinessProbe.timeoutSeconds", INVALID)],
    ),
    (
        "negative initial delay",
        put(f"{C0}/readinessProbe/initialDelaySeconds", -5),
        [(f"{P0}.readinessProbe.initialDelaySeconds", INVALID)],
    ),
    (
        "readiness grace period",
        put(f"{C0}/readinessProbe/terminationGracePeriodSeconds", 10),
        [(f"{P0}.readinessProbe.terminationGracePeriodSeconds", INVALID)],
    ),
    (
        "probe port name invalid",
        put(f"{C0}/livenessProbe/httpGet/port", "HTTP"),
        # One cause per broken rule: upper case, and no lower-case letter.
        [(f"{P0}.livenessProbe.httpGet.port", INVALID)] * 2,
    ),
    (
        "sleep longer than grace period",
        put(f"{C0}/lifecycle/preStop/sleep/seconds", 31),
        [(f"{P0}.lifecycle.preStop.sleep", INVALID)],
    ),
    (
        "lifecycle on init container",
        put("spec/initContainers/0/lifecycle", {"preStop": {"exec": {"command": ["x"]}}}),
        [("spec.initContainers[0].lifecycle", FORBIDDEN)],
    ),
    (
        "probe on init container",
        put("spec/initContainers/0/readinessProbe", {"exec": {"command": ["x"]}}),
        [("spec.initContainers[0].readinessProbe", FORBIDDEN)],
    ),
    (
        "privileged without escalation",
        put(f"{C0}/securityContext/privileged", True),
        [(f"{P0}.securityContext", INVALID)],
    ),
    (
        "user id out of range",
        put(f"{C0}/securityContext/runAsUser", 2**31),
        [(f"{P0}.securityContext.runAsUser", INVALID)],
    ),
    (
        "localhost seccomp without profile",
        put(f"{C0}/securityContext/seccompProfile", {"type": "Localhost"}),
        [(f"{P0}.securityContext.seccompProfile.localhostProfile", REQUIRED)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_container(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Pod", mutation) == expected


def test_port_message() -> None:
    [cause] = validate("Pod", mutated("Pod", put(f"{C0}/ports/0/containerPort", -1)))
    assert cause.message == "Invalid value: -1: must be between 1 and 65535, inclusive"


def test_unsupported_field_path_message() -> None:
    [cause] = validate(
        "Pod", mutated("Pod", put(f"{C0}/env/1/valueFrom/fieldRef/fieldPath", "status.phase"))
    )
    assert cause.message == (
        'Unsupported value: "status.phase": supported values: "metadata.name", '
        '"metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", '
        '"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"'
    )


def test_mount_not_found_message() -> None:
    [cause] = validate("Pod", mutated("Pod", put(f"{C0}/volumeMounts/0/name", "nope")))
    assert cause.message == 'Not found: "nope"'


def test_host_port_duplicate_names_the_binding() -> None:
    [cause] = validate("Pod", mutated("Pod", put(f"{C0}/ports/0/hostPort", 9090)))
    assert cause.message == 'Duplicate value: "TCP//9090"'
