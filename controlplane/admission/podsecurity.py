"""Pod Security admission: Kubernetes' Pod Security Standards, enforced.

A namespace picks its level with the label ``pod-security.kubernetes.io/enforce``:

- ``privileged``: anything goes (the only level that allows hostPath,
  host namespaces and privileged containers);
- ``baseline`` (corral's default for unlabelled namespaces): no known
  privilege escalations;
- ``restricted``: current hardening best practice.

An unreadable level fails closed to ``restricted``, as in Kubernetes. The
checks and their wording are Kubernetes' (``k8s.io/pod-security-admission``,
latest version): baseline checks first, then restricted ones, each group in
order of check ID, with every violation listed::

    pods "web" is forbidden: violates PodSecurity "baseline:latest": hostPath
    volumes (volume "data"), privileged (container "c" must not set
    securityContext.privileged=true)

Unlike Kubernetes, which only *warns* about violating pod templates,
corral refuses ReplicationControllers, ReplicaSets and Deployments whose
template violates the level: a controller that can never create its pods is
a failure better reported to whoever applied it than found later in events.

Windows host processes, AppArmor and SELinux options are not modelled by
corral, so their checks are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from corral.api import errors
from corral.api.errors import ApiError
from corral.objects import ObjView

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
PRIVILEGED = "privileged"
BASELINE = "baseline"
RESTRICTED = "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
VERSION = "latest"

# Capabilities a baseline container may add: Docker's and containerd's defaults.
BASELINE_CAPABILITIES = frozenset(
    (
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    )
)
# Namespaced sysctls that cannot affect other pods on the node.
SAFE_SYSCTLS = frozenset(
    (
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    )
)
RESTRICTED_VOLUME_TYPES = frozenset(
    (
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    )
)

# Where each kind keeps its pod spec, and how a Status names the resource.
_TEMPLATE_KINDS: dict[str, tuple[str, str]] = {
    "ReplicationController": ("replicationcontrollers", ""),
    "ReplicaSet": ("replicasets", "apps"),
    "Deployment": ("deployments", "apps"),
    "StatefulSet": ("statefulsets", "apps"),
    "DaemonSet": ("daemonsets", "apps"),
    "Job": ("jobs", "batch"),
    "CronJob": ("cronjobs", "batch"),
}


# --- helpers in Kubernetes' words ---------------------------------------------------


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _containers(spec: ObjView) -> list[ObjView]:
    """Init containers first, then containers, as Kubernetes visits them."""
    out: list[ObjView] = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        out.extend(c for c in spec.get(field) or () if isinstance(c, Mapping))
    return out


def _name(container: ObjView) -> str:
    return str(container.get("name", ""))


def _security(container: ObjView) -> ObjView:
    context = container.get("securityContext")
    return context if isinstance(context, Mapping) else {}


def _pod_security(spec: ObjView) -> ObjView:
    context = spec.get("securityContext")
    return context if isinstance(context, Mapping) else {}


def _seccomp_type(context: ObjView) -> str | None:
    profile = context.get("seccompProfile")
    if not isinstance(profile, Mapping):
        return None
    return str(profile.get("type", ""))


def _containers_phrase(names: Sequence[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_quoted(names)}"


@dataclass(frozen=True, slots=True)
class Violation:
    check: str
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


@dataclass(frozen=True, slots=True)
class ContainerView:
    name: str
    raw: ObjView
    security: ObjView


@dataclass(frozen=True, slots=True)
class PodView:
    """A pod spec with what every check looks at found once (14 checks run per pod)."""

    spec: ObjView
    containers: tuple[ContainerView, ...]
    security: ObjView

    @classmethod
    def of(cls, spec: ObjView) -> PodView:
        return cls(
            spec,
            tuple(ContainerView(_name(c), c, _security(c)) for c in _containers(spec)),
            _pod_security(spec),
        )


Check = Callable[[PodView], Violation | None]


# --- baseline -------------------------------------------------------------------------


def capabilities_baseline(pod: PodView) -> Violation | None:
    bad: list[str] = []
    forbidden: set[str] = set()
    for container in pod.containers:
        capabilities = container.security.get("capabilities") or {}
        added = [c for c in capabilities.get("add") or () if c not in BASELINE_CAPABILITIES]
        if added:
            bad.append(container.name)
            forbidden.update(added)
    if not bad:
        return None
    return Violation(
        "capabilities_baseline",
        "non-default capabilities",
        f"{_containers_phrase(bad)} must not include {_quoted(sorted(forbidden))} "
        "in securityContext.capabilities.add",
    )


def host_namespaces(pod: PodView) -> Violation | None:
    used = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if pod.spec.get(f) is True]
    if not used:
        return None
    return Violation("hostNamespaces", "host namespaces", ", ".join(used))


def host_path_volumes(pod: PodView) -> Violation | None:
    bad = [
        str(v.get("name", ""))
        for v in pod.spec.get("volumes") or ()
        if isinstance(v, Mapping) and v.get("hostPath") is not None
    ]
    if not bad:
        return None
    return Violation(
        "hostPathVolumes",
        "hostPath volumes",
        f"{_plural('volume', 'volumes', len(bad))} {_quoted(bad)}",
    )


def host_ports(pod: PodView) -> Violation | None:
    bad: list[str] = []
    ports: set[str] = set()
    for container in pod.containers:
        used = [
            str(p["hostPort"])
            for p in container.raw.get("ports") or ()
            if isinstance(p, Mapping) and p.get("hostPort")
        ]
        if used:
            bad.append(container.name)
            ports.update(used)
    if not bad:
        return None
    return Violation(
        "hostPorts",
        "hostPort",
        f"{_containers_phrase(bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
    )


def privileged(pod: PodView) -> Violation | None:
    bad = [c.name for c in pod.containers if c.security.get("privileged") is True]
    if not bad:
        return None
    return Violation(
        "privileged",
        "privileged",
        f"{_containers_phrase(bad)} must not set securityContext.privileged=true",
    )


def proc_mount(pod: PodView) -> Violation | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for container in pod.containers:
        mount = container.security.get("procMount")
        if mount is not None and mount != "Default":
            bad.append(container.name)
            kinds.add(str(mount))
    if not bad:
        return None
    return Violation(
        "procMount",
        "procMount",
        f"{_containers_phrase(bad)} must not set securityContext.procMount to "
        f"{_quoted(sorted(kinds))}",
    )


def seccomp_baseline(pod: PodView) -> Violation | None:
    problems: set[str] = set()
    pod_type = _seccomp_type(pod.security)
    if pod_type == "Unconfined":
        problems.add(f'pod must not set securityContext.seccompProfile.type to "{pod_type}"')
    bad: list[str] = []
    types: set[str] = set()
    for container in pod.containers:
        kind = _seccomp_type(container.security)
        if kind == "Unconfined":
            bad.append(container.name)
            types.add(kind)
    if bad:
        problems.add(
            f"{_containers_phrase(bad)} must not set securityContext.seccompProfile.type to "
            f"{_quoted(sorted(types))}"
        )
    if not problems:
        return None
    return Violation("seccompProfile_baseline", "seccompProfile", "; ".join(sorted(problems)))


def sysctls(pod: PodView) -> Violation | None:
    bad = [
        str(s.get("name", ""))
        for s in pod.security.get("sysctls") or ()
        if isinstance(s, Mapping) and s.get("name") not in SAFE_SYSCTLS
    ]
    if not bad:
        return None
    return Violation("sysctls", "forbidden sysctls", ", ".join(bad))


# --- restricted -----------------------------------------------------------------------


def allow_privilege_escalation(pod: PodView) -> Violation | None:
    bad = [
        c.name for c in pod.containers if c.security.get("allowPrivilegeEscalation") is not False
    ]
    if not bad:
        return None
    return Violation(
        "allowPrivilegeEscalation",
        "allowPrivilegeEscalation != false",
        f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
    )


def capabilities_restricted(pod: PodView) -> Violation | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    for container in pod.containers:
        capabilities = container.security.get("capabilities")
        if not isinstance(capabilities, Mapping):
            missing_drop.append(container.name)
            continue
        if "ALL" not in (capabilities.get("drop") or ()):
            missing_drop.append(container.name)
        added = [c for c in capabilities.get("add") or () if c != "NET_BIND_SERVICE"]
        if added:
            adding.append(container.name)
            forbidden.update(added)
    details: list[str] = []
    if missing_drop:
        details.append(
            f'{_containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_containers_phrase(adding)} must not include {_quoted(sorted(forbidden))} "
            "in securityContext.capabilities.add"
        )
    if not details:
        return None
    return Violation("capabilities_restricted", "unrestricted capabilities", "; ".join(details))


def _volume_type(volume: ObjView) -> str:
    for key in volume:
        if key != "name":
            return str(key)
    return ""


def restricted_volumes(pod: PodView) -> Violation | None:
    bad: list[str] = []
    types: set[str] = set()
    for volume in pod.spec.get("volumes") or ():
        if not isinstance(volume, Mapping):
            continue
        kind = _volume_type(volume)
        if kind and kind not in RESTRICTED_VOLUME_TYPES:
            bad.append(str(volume.get("name", "")))
            types.add(kind)
    if not bad:
        return None
    return Violation(
        "restrictedVolumes",
        "restricted volume types",
        f"{_plural('volume', 'volumes', len(bad))} {_quoted(bad)} "
        f"{_plural('uses', 'use', len(bad))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(types))} "
        f"{_quoted(sorted(types))}",
    )


def run_as_non_root(pod: PodView) -> Violation | None:
    setters: list[str] = []
    pod_value = pod.security.get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit: list[str] = []
    implicit: list[str] = []
    for container in pod.containers:
        value = container.security.get("runAsNonRoot")
        if value is False:
            explicit.append(container.name)
        elif value is None and pod_value is not True:
            implicit.append(container.name)
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return Violation(
            "runAsNonRoot",
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return Violation(
            "runAsNonRoot",
            "runAsNonRoot != true",
            f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def run_as_user(pod: PodView) -> Violation | None:
    setters: list[str] = []
    if pod.security.get("runAsUser") == 0:
        setters.append("pod")
    explicit = [c.name for c in pod.containers if c.security.get("runAsUser") == 0]
    if explicit:
        setters.append(_containers_phrase(explicit))
    if not setters:
        return None
    return Violation(
        "runAsUser", "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"
    )


def seccomp_restricted(pod: PodView) -> Violation | None:
    valid = ("RuntimeDefault", "Localhost")
    setters: list[str] = []
    bad_types: set[str] = set()
    pod_type = _seccomp_type(pod.security)
    pod_set = False
    if pod_type is not None:
        if pod_type in valid:
            pod_set = True
        else:
            setters.append("pod")
            bad_types.add(pod_type)
    explicit: list[str] = []
    implicit: list[str] = []
    for container in pod.containers:
        kind = _seccomp_type(container.security)
        if kind is None:
            if not pod_set:
                implicit.append(container.name)
        elif kind not in valid:
            explicit.append(container.name)
            bad_types.add(kind)
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return Violation(
            "seccompProfile_restricted",
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{_quoted(sorted(bad_types))}",
        )
    if implicit:
        return Violation(
            "seccompProfile_restricted",
            "seccompProfile",
            f"pod or {_containers_phrase(implicit)} must set securityContext.seccompProfile.type "
            'to "RuntimeDefault" or "Localhost"',
        )
    return None


# Each list is in check-ID order (Go's byte order, capitals first), which is
# the order Kubernetes reports violations in: baseline, then restricted.
BASELINE_CHECKS: tuple[tuple[str, Check], ...] = (
    ("capabilities_baseline", capabilities_baseline),
    ("hostNamespaces", host_namespaces),
    ("hostPathVolumes", host_path_volumes),
    ("hostPorts", host_ports),
    ("privileged", privileged),
    ("procMount", proc_mount),
    ("seccompProfile_baseline", seccomp_baseline),
    ("sysctls", sysctls),
)
RESTRICTED_CHECKS: tuple[tuple[str, Check], ...] = (
    ("allowPrivilegeEscalation", allow_privilege_escalation),
    ("capabilities_restricted", capabilities_restricted),
    ("restrictedVolumes", restricted_volumes),
    ("runAsNonRoot", run_as_non_root),
    ("runAsUser", run_as_user),
    ("seccompProfile_restricted", seccomp_restricted),
)
# At restricted, these baseline checks give way to their stricter versions.
_OVERRIDDEN = frozenset(("capabilities_baseline", "seccompProfile_baseline"))


_CHECKS_BY_LEVEL: dict[str, tuple[Check, ...]] = {
    PRIVILEGED: (),
    BASELINE: tuple(fn for _, fn in BASELINE_CHECKS),
    RESTRICTED: (
        *(fn for check_id, fn in BASELINE_CHECKS if check_id not in _OVERRIDDEN),
        *(fn for _, fn in RESTRICTED_CHECKS),
    ),
}


def violations(pod_spec: ObjView, level: str) -> list[Violation]:
    found = []
    pod = PodView.of(pod_spec)
    for check in _CHECKS_BY_LEVEL.get(level, _CHECKS_BY_LEVEL[RESTRICTED]):
        violation = check(pod)
        if violation is not None:
            found.append(violation)
    return found


def check(pod_spec: ObjView, level: str) -> list[str]:
    """Every rule of ``level`` the pod spec (wire form) breaks, in Kubernetes' words."""
    return [str(v) for v in violations(pod_spec, level)]


# --- admission --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PodSecurityConfig:
    default_level: str = BASELINE
    # Namespaces never checked (Kubernetes' exemptions.namespaces).
    exempt_namespaces: frozenset[str] = frozenset()


def level_for(namespace_labels: Mapping[str, str] | None, default: str = BASELINE) -> str:
    """The namespace's level; a label with an unknown value fails closed to restricted."""
    value = (namespace_labels or {}).get(ENFORCE_LABEL)
    if value is None:
        return default
    return value if value in LEVELS else RESTRICTED


def pod_spec_of(kind: str, obj: ObjView) -> ObjView | None:
    """The pod spec a Pod, or a workload's template, carries (None: not a pod kind)."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return None
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        # A CronJob's pods come from the Job template inside it.
        job_template = spec.get("jobTemplate")
        spec = job_template.get("spec") if isinstance(job_template, Mapping) else None
        if not isinstance(spec, Mapping):
            return None
    if kind in _TEMPLATE_KINDS:
        template = spec.get("template")
        inner = template.get("spec") if isinstance(template, Mapping) else None
        return inner if isinstance(inner, Mapping) else None
    return None


def _images(spec: ObjView) -> list[tuple[str, Any]]:
    return [(_name(c), c.get("image")) for c in _containers(spec)]


def significant_update(kind: str, spec: ObjView, old_spec: ObjView | None) -> bool:
    """Whether an update needs checking at all.

    A pod's spec is immutable except for images and a few scheduling fields,
    so, as in Kubernetes, only a change of containers or images re-checks it;
    a workload is re-checked whenever its template changes (that starts a
    rollout). Metadata and status writes never are, so tightening a
    namespace's level does not break controllers updating existing objects.
    """
    if old_spec is None:
        return True
    if kind == "Pod":
        return _images(spec) != _images(old_spec)
    return spec != old_spec


def _resource(kind: str) -> tuple[str, str]:
    if kind == "Pod":
        return "pods", ""
    return _TEMPLATE_KINDS[kind]


def admit(
    kind: str,
    obj: ObjView,
    namespace_labels: Mapping[str, str] | None,
    *,
    old: ObjView | None = None,
    subresource: str = "",
    config: PodSecurityConfig | None = None,
) -> ApiError | None:
    """None when the write may go ahead; otherwise the 403 that refuses it.

    Call it on create and update of Pods, ReplicationControllers, ReplicaSets
    and Deployments, after defaulting and before storage, with the labels of
    the object's namespace (an unknown namespace: ``None``). Subresource
    writes (status, scale, binding) are never checked.
    """
    config = config or PodSecurityConfig()
    if subresource:
        return None
    spec = pod_spec_of(kind, obj)
    if spec is None:
        return None
    raw_meta = obj.get("metadata")
    meta: ObjView = raw_meta if isinstance(raw_meta, Mapping) else {}
    if meta.get("namespace") in config.exempt_namespaces:
        return None
    level = level_for(namespace_labels, config.default_level)
    if level == PRIVILEGED:
        return None
    if old is not None and not significant_update(kind, spec, pod_spec_of(kind, old)):
        return None
    found = check(spec, level)
    if not found:
        return None
    resource, group = _resource(kind)
    qualified = f"{resource}.{group}" if group else resource
    name = str(meta.get("name") or "")
    subject = f'{qualified} "{name}"' if name else qualified
    return errors.forbidden(
        f'{subject} is forbidden: violates PodSecurity "{level}:{VERSION}": ' + ", ".join(found),
        resource,
        name,
        group,
    )
