"""Pods and pod templates: ``ValidatePodSpec``, ``ValidatePodCreate`` and ``ValidatePodUpdate``."""

from __future__ import annotations

import json
import re
from typing import Any

from corral import replication
from corral.api.containers import Container
from corral.api.core import Pod, PodDNSConfig, PodSpec, PodTemplateSpec, Toleration
from corral.api.errors import Cause
from corral.api.validate.common import (
    MAX_INT32,
    dns_label,
    dns_subdomain,
    id_in_range,
    ip_address,
    validate_labels,
)
from corral.api.validate.containers import (
    seccomp_profile,
    validate_containers,
    validate_init_containers,
)
from corral.api.validate.field import (
    IS_NEGATIVE,
    child,
    duplicate,
    forbidden,
    index,
    invalid,
    required,
)
from corral.api.validate.meta import validate_template_meta
from corral.api.validate.scheduling import (
    validate_affinity,
    validate_tolerations,
    validate_topology_spread,
)
from corral.api.validate.volumes import validate_volumes

MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_LIST_CHARS = 2048

_SYSCTL_MAX_LENGTH = 253
_SYSCTL_BODY = r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL_RE = re.compile(_SYSCTL_BODY)

UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)
POD_UPDATE_FORBIDDEN = "pod updates may not change fields other than " + ",".join(
    UPDATABLE_POD_FIELDS
)
_MAX_DIFF_LINES = 20


def validate_replication_hooks(
    annotations: dict[str, str] | None, spec: PodSpec | None, path: str
) -> list[Cause]:
    """A replicated set's hooks (corral/replication.py): parseable, and in a container it has."""
    text = (annotations or {}).get(replication.HOOKS_ANNOTATION)
    if text is None:
        return []
    field = f"{path}.annotations[{replication.HOOKS_ANNOTATION}]"
    try:
        hooks = replication.parse_hooks(text)
    except replication.HooksError as error:
        return [invalid(field, text, str(error))]
    names = {c.name for c in (spec.containers if spec is not None else None) or ()}
    if hooks.container not in names:
        return [invalid(field, text, f"container: no container named {hooks.container!r}")]
    return []


def validate_pod(pod: Pod) -> list[Cause]:
    causes = validate_pod_spec(pod.spec, "spec")
    causes.extend(validate_replication_hooks(pod.metadata.annotations, pod.spec, "metadata"))
    # Kubernetes holds pods to this but not pod templates, which it stored
    # long before it started checking.
    for wire, containers in (
        ("containers", pod.spec.containers),
        ("initContainers", pod.spec.init_containers),
    ):
        for i, ctr in enumerate(containers or ()):
            if ctr.image and ctr.image != ctr.image.strip():
                causes.append(
                    invalid(
                        f"spec.{wire}[{i}].image",
                        ctr.image,
                        "must not have leading or trailing whitespace",
                    )
                )
    return causes


def validate_pod_template(template: PodTemplateSpec | None, path: str) -> list[Cause]:
    """``ValidatePodTemplateSpec``; a missing template is the caller's to report."""
    if template is None:
        return []
    causes = validate_template_meta(template.metadata, f"{path}.metadata")
    if template.metadata is not None:
        causes.extend(
            validate_replication_hooks(
                template.metadata.annotations, template.spec, f"{path}.metadata"
            )
        )
    if template.spec is None:
        causes.append(required(f"{path}.spec.containers"))
    else:
        causes.extend(validate_pod_spec(template.spec, f"{path}.spec"))
    return causes


def validate_pod_spec(spec: PodSpec, path: str) -> list[Cause]:
    causes: list[Cause] = []
    grace = spec.termination_grace_period_seconds
    if grace < 0:
        causes.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, IS_NEGATIVE))
    volumes = validate_volumes(spec.volumes, f"{path}.volumes", causes)
    causes.extend(validate_containers(spec.containers, volumes, grace, f"{path}.containers"))
    if spec.init_containers:
        causes.extend(
            validate_init_containers(
                spec.init_containers, spec.containers, volumes, f"{path}.initContainers"
            )
        )
    if spec.host_network:
        causes.extend(_host_network_ports(spec.containers, f"{path}.containers"))
    causes.extend(validate_labels(spec.node_selector, f"{path}.nodeSelector"))
    causes.extend(_pod_security(spec, path))
    causes.extend(validate_affinity(spec.affinity, f"{path}.affinity"))
    causes.extend(_dns_config(spec.dns_config, spec.dns_policy, f"{path}.dnsConfig"))
    causes.extend(
        validate_topology_spread(
            spec.topology_spread_constraints, f"{path}.topologySpreadConstraints"
        )
    )
    if spec.service_account_name:
        causes.extend(dns_subdomain(spec.service_account_name, f"{path}.serviceAccountName"))
    if spec.node_name:
        causes.extend(dns_subdomain(spec.node_name, f"{path}.nodeName"))
    deadline = spec.active_deadline_seconds
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        causes.append(
            invalid(
                f"{path}.activeDeadlineSeconds",
                deadline,
                f"must be between 1 and {MAX_INT32}, inclusive",
            )
        )
    if spec.hostname:
        causes.extend(dns_label(spec.hostname, f"{path}.hostname"))
    if spec.subdomain:
        causes.extend(dns_label(spec.subdomain, f"{path}.subdomain"))
    causes.extend(validate_tolerations(spec.tolerations, f"{path}.tolerations"))
    aliases_path = f"{path}.hostAliases"
    for i, alias in enumerate(spec.host_aliases or ()):
        alias_path = f"{aliases_path}[{i}]"
        causes.extend(ip_address(alias.ip, f"{alias_path}.ip"))
        for j, hostname in enumerate(alias.hostnames or ()):
            causes.extend(dns_subdomain(hostname, index(f"{alias_path}.hostnames", j)))
    if spec.priority_class_name:
        causes.extend(dns_subdomain(spec.priority_class_name, f"{path}.priorityClassName"))
    return causes


def _host_network_ports(containers: list[Container], path: str) -> list[Cause]:
    # An unset host port is defaulted to the container port on the host's network.
    causes: list[Cause] = []
    for i, ctr in enumerate(containers):
        for j, port in enumerate(ctr.ports or ()):
            if port.host_port and port.host_port != port.container_port:
                causes.append(
                    invalid(
                        f"{path}[{i}].ports[{j}].hostPort",
                        port.host_port,
                        "must match `containerPort` when `hostNetwork` is true",
                    )
                )
    return causes


def _sysctl_namespace(name: str) -> str:
    normalized = name.replace("/", ".")
    if normalized.startswith("net."):
        return "net"
    if normalized == "kernel.sem" or normalized.startswith(
        ("kernel.shm", "kernel.msg", "fs.mqueue.")
    ):
        return "ipc"
    return ""


def _pod_security(spec: PodSpec, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if spec.share_process_namespace and spec.host_pid:
        causes.append(
            invalid(
                f"{path}.shareProcessNamespace",
                True,
                "ShareProcessNamespace and HostPID cannot both be enabled",
            )
        )
    sc = spec.security_context
    if sc is None:
        return causes
    sc_path = f"{path}.securityContext"
    causes.extend(id_in_range(sc.fs_group, f"{sc_path}.fsGroup"))
    causes.extend(id_in_range(sc.run_as_user, f"{sc_path}.runAsUser"))
    causes.extend(id_in_range(sc.run_as_group, f"{sc_path}.runAsGroup"))
    for g, gid in enumerate(sc.supplemental_groups or ()):
        causes.extend(id_in_range(gid, index(f"{sc_path}.supplementalGroups", g)))
    seen: set[str] = set()
    for i, sysctl in enumerate(sc.sysctls or ()):
        name_path = child(index(f"{sc_path}.sysctls", i), "name")
        name = sysctl.name
        if not name:
            causes.append(required(name_path))
        elif len(name) > _SYSCTL_MAX_LENGTH or not _SYSCTL_RE.fullmatch(name):
            causes.append(
                invalid(
                    name_path,
                    name,
                    f"must have at most {_SYSCTL_MAX_LENGTH} characters and match regex "
                    f"^{_SYSCTL_BODY}$",
                )
            )
        elif name in seen:
            causes.append(duplicate(name_path, name))
        namespace = _sysctl_namespace(name)
        if spec.host_network and namespace == "net":
            causes.append(
                invalid(name_path, name, "may not be specified when 'hostNetwork' is true")
            )
        elif spec.host_ipc and namespace == "ipc":
            causes.append(invalid(name_path, name, "may not be specified when 'hostIPC' is true"))
        seen.add(name)
    causes.extend(seccomp_profile(sc.seccomp_profile, f"{sc_path}.seccompProfile"))
    return causes


def _dns_config(config: PodDNSConfig | None, policy: str, path: str) -> list[Cause]:
    if policy == "None":
        if config is None:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.nameservers:
            return [
                required(
                    f"{path}.nameservers",
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if config is None:
        return []
    causes: list[Cause] = []
    nameservers = config.nameservers or []
    if len(nameservers) > MAX_DNS_NAMESERVERS:
        causes.append(
            invalid(
                f"{path}.nameservers",
                nameservers,
                f"must not have more than {MAX_DNS_NAMESERVERS} nameservers",
            )
        )
    for i, server in enumerate(nameservers):
        causes.extend(ip_address(server, index(f"{path}.nameservers", i)))
    searches = config.searches or []
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        causes.append(
            invalid(
                f"{path}.searches",
                searches,
                f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths",
            )
        )
    if len(" ".join(searches)) > MAX_DNS_SEARCH_LIST_CHARS:
        causes.append(
            invalid(
                f"{path}.searches",
                searches,
                f"must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters "
                "(including spaces) in the search list",
            )
        )
    for i, search in enumerate(searches):
        # A trailing dot only says the name is fully qualified.
        domain = search[:-1] if search.endswith(".") else search
        causes.extend(dns_subdomain(domain, index(f"{path}.searches", i)))
    for i, option in enumerate(config.options or ()):
        if not option.name:
            causes.append(required(index(f"{path}.options", i), "must not be empty"))
    return causes


# --- updates ----------------------------------------------------------------------------------


def validate_pod_update(new: Pod, old: Pod) -> list[Cause]:
    """The update rules; the new pod's own validity is checked separately."""
    for wire, new_list, old_list in (
        ("containers", new.spec.containers, old.spec.containers),
        ("initContainers", new.spec.init_containers or [], old.spec.init_containers or []),
    ):
        if len(new_list) != len(old_list):
            return [forbidden(f"spec.{wire}", "pod updates may not add or remove containers")]

    causes: list[Cause] = []
    new_deadline = new.spec.active_deadline_seconds
    old_deadline = old.spec.active_deadline_seconds
    deadline_path = "spec.activeDeadlineSeconds"
    if new_deadline is not None:
        if not 0 <= new_deadline <= MAX_INT32:
            return [
                invalid(
                    deadline_path, new_deadline, f"must be between 0 and {MAX_INT32}, inclusive"
                )
            ]
        if old_deadline is not None and old_deadline < new_deadline:
            return [
                invalid(deadline_path, new_deadline, "must be less than or equal to previous value")
            ]
    elif old_deadline is not None:
        causes.append(
            invalid(deadline_path, None, "must not update from a positive integer to nil value")
        )

    causes.extend(_only_added_tolerations(new.spec.tolerations or [], old.spec.tolerations or []))

    if new.spec == old.spec:
        return causes
    new_spec = new.spec.model_dump(by_alias=True, exclude_none=True)
    old_spec = old.spec.model_dump(by_alias=True, exclude_none=True)
    for wire in ("containers", "initContainers"):
        for new_ctr, old_ctr in zip(new_spec.get(wire, []), old_spec.get(wire, []), strict=True):
            _copy_key(new_ctr, old_ctr, "image")
    _copy_key(new_spec, old_spec, "activeDeadlineSeconds")
    _copy_key(new_spec, old_spec, "tolerations")
    old_grace = old.spec.termination_grace_period_seconds
    if old_grace < 0 and new_spec.get("terminationGracePeriodSeconds") == 1:
        new_spec["terminationGracePeriodSeconds"] = old_grace
    if new_spec != old_spec:
        diff = _diff(old_spec, new_spec, "spec")
        causes.append(forbidden("spec", POD_UPDATE_FORBIDDEN + "\n" + "\n".join(diff)))
    return causes


def _copy_key(target: dict[str, Any], source: dict[str, Any], name: str) -> None:
    if name in source:
        target[name] = source[name]
    else:
        target.pop(name, None)


def _only_added_tolerations(new: list[Toleration], old: list[Toleration]) -> list[Cause]:
    def ident(t: Toleration) -> tuple[str | None, ...]:
        # tolerationSeconds may change on an existing toleration.
        return (t.key, t.operator, t.value, t.effect)

    present = {ident(t) for t in new}
    if any(ident(t) not in present for t in old):
        return [
            forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            )
        ]
    return []


def _diff(old: Any, new: Any, path: str) -> list[str]:
    """Lines naming what changed, so that the user can see which field is refused."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for name in sorted(old.keys() | new.keys()):
            if old.get(name) != new.get(name):
                lines.extend(_diff(old.get(name), new.get(name), child(path, name)))
            if len(lines) >= _MAX_DIFF_LINES:
                break
        return lines[:_MAX_DIFF_LINES]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        lines = []
        for i, (o, n) in enumerate(zip(old, new, strict=True)):
            if o != n:
                lines.extend(_diff(o, n, f"{path}[{i}]"))
        return lines[:_MAX_DIFF_LINES]
    return [f"- {path}: {_show(old)}", f"+ {path}: {_show(new)}"]


def _show(value: Any) -> str:
    if value is None:
        return "<unset>"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
