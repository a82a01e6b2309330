"""Pod specs as a whole, and what a pod update may change."""

from __future__ import annotations

import time

import pytest

from corral.api.resources import REGISTRY
from corral.api.validate import validate_object

from .builders import (
    FORBIDDEN,
    INVALID,
    REQUIRED,
    Mutation,
    append,
    both,
    causes_of,
    drop,
    mutated,
    pod,
    put,
    update_causes,
    validate,
)

CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "negative grace period",
        put("spec/terminationGracePeriodSeconds", -1),
        # The preStop sleep can no longer fit in the grace period either.
        [
            ("spec.terminationGracePeriodSeconds", INVALID),
            ("spec.containers[0].lifecycle.preStop.sleep", INVALID),
        ],
    ),
    (
        "zero active deadline",
        put("spec/activeDeadlineSeconds", 0),
        [("spec.activeDeadlineSeconds", INVALID)],
    ),
    (
        "dnsPolicy None without config",
        both(put("spec/dnsPolicy", "None"), drop("spec/dnsConfig")),
        [("spec.dnsConfig", REQUIRED)],
    ),
    (
        "dnsPolicy None without nameservers",
        both(put("spec/dnsPolicy", "None"), put("spec/dnsConfig", {"searches": ["a.b"]})),
        [("spec.dnsConfig.nameservers", REQUIRED)],
    ),
    (
        "too many nameservers",
        put("spec/dnsConfig/nameservers", ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]),
        [("spec.dnsConfig.nameservers", INVALID)],
    ),
    (
        "nameserver not an IP",
        put("spec/dnsConfig/nameservers/0", "dns.local"),
        [("spec.dnsConfig.nameservers[0]", INVALID)],
    ),
    (
        "bad search domain",
        put("spec/dnsConfig/searches/0", "Svc_Local"),
        [("spec.dnsConfig.searches[0]", INVALID)],
    ),
    (
        "host network with other host port",
        both(
            put("spec/hostNetwork", True),
            drop("spec/securityContext/sysctls"),
            put("spec/containers/0/ports/0/hostPort", 80),
        ),
        [("spec.containers[0].ports[0].hostPort", INVALID)],
    ),
    (
        "host network with unset host port",
        both(put("spec/hostNetwork", True), drop("spec/securityContext/sysctls")),
        [],
    ),
    (
        "network sysctl on host network",
        put("spec/hostNetwork", True),
        [("spec.securityContext.sysctls[0].name", INVALID)],
    ),
    (
        "bad sysctl name",
        put("spec/securityContext/sysctls/0/name", "Net.Core"),
        [("spec.securityContext.sysctls[0].name", INVALID)],
    ),
    (
        "duplicate sysctl",
        append("spec/securityContext/sysctls", {"name": "net.core.somaxconn", "value": "1"}),
        [("spec.securityContext.sysctls[1].name", "FieldValueDuplicate")],
    ),
    (
        "negative fsGroup",
        put("spec/securityContext/fsGroup", -1),
        [("spec.securityContext.fsGroup", INVALID)],
    ),
    (
        "shared process namespace with host PID",
        both(put("spec/shareProcessNamespace", True), put("spec/hostPID", True)),
        [("spec.shareProcessNamespace", INVALID)],
    ),
    (
        "bad node selector value",
        put("spec/nodeSelector/disk", "fast ssd"),
        [("spec.nodeSelector", INVALID)],
    ),
    ("bad hostname", put("spec/hostname", "web_0"), [("spec.hostname", INVALID)]),
    (
        "host alias with bad IP",
        put("spec/hostAliases", [{"ip": "300.1.1.1", "hostnames": ["db.local"]}]),
        [("spec.hostAliases[0].ip", INVALID)],
    ),
    (
        "bad service account",
        put("spec/serviceAccountName", "Web"),
        [("spec.serviceAccountName", INVALID)],
    ),
    ("bad node name", put("spec/nodeName", "node_1"), [("spec.nodeName", INVALID)]),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_pod_spec(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert causes_of("Pod", mutation) == expected


def test_realistic_pod_is_valid() -> None:
    assert validate("Pod", pod()) == []


def test_minimal_pod_is_valid() -> None:
    minimal = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert validate("Pod", minimal) == []


def test_dns_config_message() -> None:
    causes = validate("Pod", mutated("Pod", put("spec/dnsPolicy", "None"), drop("spec/dnsConfig")))
    assert [c.message for c in causes] == [
        "Required value: must provide `dnsConfig` when `dnsPolicy` is None"
    ]


UPDATES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    ("new image", put("spec/containers/0/image", "registry.example.com/web:1.5.0"), []),
    ("new init image", put("spec/initContainers/0/image", "registry.example.com/web:1.5.0"), []),
    ("status only", put("status", {"phase": "Running"}), []),
    ("shorter deadline", put("spec/activeDeadlineSeconds", 60), []),
    (
        "longer deadline",
        put("spec/activeDeadlineSeconds", 7200),
        [("spec.activeDeadlineSeconds", INVALID)],
    ),
    (
        "deadline removed",
        drop("spec/activeDeadlineSeconds"),
        [("spec.activeDeadlineSeconds", INVALID)],
    ),
    (
        "toleration added",
        append("spec/tolerations", {"key": "dedicated", "operator": "Exists"}),
        [],
    ),
    ("toleration seconds changed", put("spec/tolerations/0/tolerationSeconds", 60), []),
    (
        "toleration changed",
        put("spec/tolerations/0/key", "node.kubernetes.io/unreachable"),
        [("spec.tolerations", FORBIDDEN)],
    ),
    ("restart policy changed", put("spec/restartPolicy", "Never"), [("spec", FORBIDDEN)]),
    ("env changed", put("spec/containers/0/env/0/value", "debug"), [("spec", FORBIDDEN)]),
    (
        "container added",
        append("spec/containers", {"name": "extra", "image": "busybox"}),
        [("spec.containers", FORBIDDEN)],
    ),
    (
        "init container removed",
        put("spec/initContainers", []),
        [("spec.initContainers", FORBIDDEN)],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [c[1:] for c in UPDATES], ids=[c[0] for c in UPDATES]
)
def test_pod_update(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    assert update_causes("Pod", mutation) == expected


def test_pod_update_message_names_what_may_change() -> None:
    old = pod()
    new = mutated("Pod", put("spec/restartPolicy", "Never"))
    [cause] = validate("Pod", new, old)
    assert cause.message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
        "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
        "(allow it to be set to 1 if it was previously negative)\n"
    )
    assert '- spec.restartPolicy: "Always"' in cause.message
    assert '+ spec.restartPolicy: "Never"' in cause.message


def test_update_is_also_checked_as_an_object() -> None:
    got = update_causes("Pod", put("spec/containers/0/image", " registry.example.com/web:1.4.2"))
    assert got == [("spec.containers[0].image", INVALID)]


def test_validating_a_pod_is_fast() -> None:
    rt = REGISTRY.by_kind("v1", "Pod")
    assert rt is not None
    model = rt.model.model_validate(pod())
    validate_object(rt, model)
    rounds = 500
    start = time.perf_counter()
    for _ in range(rounds):
        validate_object(rt, model)
    per_call = (time.perf_counter() - start) / rounds
    # A realistic two-container pod takes well under 100us on a developer
    # machine; the bound leaves room for a loaded CI runner.
    assert per_call < 0.001
