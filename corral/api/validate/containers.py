"""Containers: ``validateContainerCommon``, ports, environment, mounts, probes, handlers."""

from __future__ import annotations

import re
from collections.abc import Iterable

from corral.api.containers import (
    Container,
    ContainerPort,
    EnvFromSource,
    EnvVar,
    ExecAction,
    HTTPGetAction,
    LifecycleHandler,
    Probe,
    SeccompProfile,
    SecurityContext,
    SleepAction,
    TCPSocketAction,
)
from corral.api.core import Volume
from corral.api.errors import Cause
from corral.api.validate.checks import (
    is_config_map_key,
    is_dns1123_subdomain,
    is_env_var_name,
    is_valid_port_name,
)
from corral.api.validate.common import (
    dns_label,
    id_in_range,
    name_messages,
    non_negative,
)
from corral.api.validate.field import (
    IS_NEGATIVE,
    child,
    duplicate,
    forbidden,
    invalid,
    invalid_each,
    not_found,
    required,
)
from corral.api.validate.resources import validate_resources
from corral.api.validate.volumes import (
    ENV_FIELD_PATHS,
    local_descending_path,
    object_field_selector,
    resource_field_selector,
)
from corral.api.validation import is_valid_port_number

# --- ports, environment, mounts ----------------------------------------------------------


def validate_ports(ports: list[ContainerPort] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports or ()):
        port_path = f"{path}[{i}]"
        if port.name:
            msgs = is_valid_port_name(port.name)
            if msgs:
                causes.extend(invalid_each(f"{port_path}.name", port.name, msgs))
            elif port.name in names:
                causes.append(duplicate(f"{port_path}.name", port.name))
            else:
                names.add(port.name)
        if port.container_port == 0:
            causes.append(required(f"{port_path}.containerPort"))
        else:
            causes.extend(
                invalid_each(
                    f"{port_path}.containerPort",
                    port.container_port,
                    is_valid_port_number(port.container_port),
                )
            )
        if port.host_port:
            causes.extend(
                invalid_each(
                    f"{port_path}.hostPort",
                    port.host_port,
                    is_valid_port_number(port.host_port),
                )
            )
    return causes


def host_port_conflicts(containers: Iterable[tuple[str, Container]]) -> list[Cause]:
    """``AccumulateUniqueHostPorts``: one host port per protocol and host IP.

    ``containers`` pairs each container with its field path.
    """
    causes: list[Cause] = []
    seen: set[str] = set()
    for ctr_path, ctr in containers:
        for j, port in enumerate(ctr.ports or ()):
            if not port.host_port:
                continue
            ident = f"{port.protocol}/{port.host_ip or ''}/{port.host_port}"
            if ident in seen:
                causes.append(duplicate(f"{ctr_path}.ports[{j}].hostPort", ident))
            else:
                seen.add(ident)
    return causes


def validate_env(env: list[EnvVar] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(env or ()):
        var_path = f"{path}[{i}]"
        if not var.name:
            causes.append(required(f"{var_path}.name"))
        else:
            causes.extend(invalid_each(f"{var_path}.name", var.name, is_env_var_name(var.name)))
        source = var.value_from
        if source is None:
            continue
        from_path = f"{var_path}.valueFrom"
        count = 0
        if source.field_ref is not None:
            count += 1
            causes.extend(
                object_field_selector(source.field_ref, ENV_FIELD_PATHS, f"{from_path}.fieldRef")
            )
        if source.resource_field_ref is not None:
            count += 1
            causes.extend(
                resource_field_selector(
                    source.resource_field_ref, f"{from_path}.resourceFieldRef", volume=False
                )
            )
        for wire, ref in (
            ("configMapKeyRef", source.config_map_key_ref),
            ("secretKeyRef", source.secret_key_ref),
        ):
            if ref is None:
                continue
            count += 1
            ref_path = child(from_path, wire)
            name = ref.name or ""
            causes.extend(invalid_each(f"{ref_path}.name", name, is_dns1123_subdomain(name)))
            if not ref.key:
                causes.append(required(f"{ref_path}.key"))
            else:
                causes.extend(invalid_each(f"{ref_path}.key", ref.key, is_config_map_key(ref.key)))
        if count == 0:
            causes.append(
                invalid(
                    from_path,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` "
                    "or `secretKeyRef`",
                )
            )
        elif var.value:
            causes.append(invalid(from_path, "", "may not be specified when `value` is not empty"))
        elif count > 1:
            causes.append(
                invalid(from_path, "", "may not have more than one field specified at a time")
            )
    return causes


def validate_env_from(sources: list[EnvFromSource] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, source in enumerate(sources or ()):
        source_path = f"{path}[{i}]"
        if source.prefix:
            causes.extend(
                invalid_each(f"{source_path}.prefix", source.prefix, is_env_var_name(source.prefix))
            )
        count = 0
        for wire, ref in (
            ("configMapRef", source.config_map_ref),
            ("secretRef", source.secret_ref),
        ):
            if ref is None:
                continue
            count += 1
            name_path = child(child(source_path, wire), "name")
            if not ref.name:
                causes.append(required(name_path))
            else:
                causes.extend(
                    invalid_each(
                        name_path,
                        ref.name,
                        name_messages(is_dns1123_subdomain, ref.name, prefix=True),
                    )
                )
        if count == 0:
            causes.append(
                invalid(source_path, "", "must specify one of: `configMapRef` or `secretRef`")
            )
        elif count > 1:
            causes.append(
                invalid(source_path, "", "may not have more than one field specified at a time")
            )
    return causes


def validate_mounts(ctr: Container, volumes: dict[str, Volume], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    privileged = bool(ctr.security_context and ctr.security_context.privileged)
    for i, mount in enumerate(ctr.volume_mounts or ()):
        mount_path = f"{path}[{i}]"
        if not mount.name:
            causes.append(required(f"{mount_path}.name"))
        if mount.name not in volumes:
            causes.append(not_found(f"{mount_path}.name", mount.name))
        where = f"{mount_path}.mountPath"
        if not mount.mount_path:
            causes.append(required(where))
        elif not mount.mount_path.startswith("/"):
            # Stricter than Kubernetes, which leaves this to the kubelet:
            # corral's node agent bind-mounts at absolute paths only.
            causes.append(invalid(where, mount.mount_path, "must be an absolute path"))
        if mount.mount_path in seen:
            causes.append(invalid(where, mount.mount_path, "must be unique"))
        seen.add(mount.mount_path)
        if mount.sub_path:
            causes.extend(local_descending_path(mount.sub_path, f"{mount_path}.subPath"))
        if mount.sub_path_expr:
            expr_path = f"{mount_path}.subPathExpr"
            if mount.sub_path:
                causes.append(
                    invalid(
                        expr_path,
                        mount.sub_path_expr,
                        "subPathExpr and subPath are mutually exclusive",
                    )
                )
            causes.extend(local_descending_path(mount.sub_path_expr, expr_path))
        if mount.mount_propagation == "Bidirectional" and not privileged:
            causes.append(
                forbidden(
                    f"{mount_path}.mountPropagation",
                    "Bidirectional mount propagation is available only to privileged containers",
                )
            )
    return causes


# --- probes and lifecycle handlers --------------------------------------------------------

_HEADER_RE = re.compile(r"[-A-Za-z0-9]+")
_HEADER_ERR = (
    "a valid HTTP header must consist of alphanumeric characters or '-' "
    "(e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"
)


def port_num_or_name(port: int | str, path: str) -> list[Cause]:
    if isinstance(port, int):
        return invalid_each(path, port, is_valid_port_number(port))
    return invalid_each(path, port, is_valid_port_name(port))


def _handler(
    actions: tuple[
        tuple[str, ExecAction | HTTPGetAction | TCPSocketAction | SleepAction | None], ...
    ],
    grace: int | None,
    path: str,
) -> list[Cause]:
    causes: list[Cause] = []
    count = 0
    for wire, action in actions:
        if action is None:
            continue
        action_path = child(path, wire)
        if count:
            causes.append(forbidden(action_path, "may not specify more than 1 handler type"))
            continue
        count += 1
        if isinstance(action, ExecAction):
            if not action.command:
                causes.append(required(f"{action_path}.command"))
        elif isinstance(action, HTTPGetAction):
            # An empty path is defaulted to "/", so it is not checked.
            causes.extend(port_num_or_name(action.port, f"{action_path}.port"))
            for header in action.http_headers or ():
                if not _HEADER_RE.fullmatch(header.name):
                    causes.append(invalid(f"{action_path}.httpHeaders", header.name, _HEADER_ERR))
        elif isinstance(action, TCPSocketAction):
            causes.extend(port_num_or_name(action.port, f"{action_path}.port"))
        elif grace is not None and not 0 <= action.seconds <= grace:
            causes.append(
                invalid(
                    action_path,
                    action.seconds,
                    f"must be non-negative and less than terminationGracePeriodSeconds ({grace})",
                )
            )
    if not count:
        causes.append(required(path, "must specify a handler type"))
    return causes


def lifecycle_handler(handler: LifecycleHandler, grace: int | None, path: str) -> list[Cause]:
    return _handler(
        (
            ("exec", handler.exec),
            ("httpGet", handler.http_get),
            ("tcpSocket", handler.tcp_socket),
            ("sleep", handler.sleep),
        ),
        grace,
        path,
    )


def validate_probe(probe: Probe | None, kind: str, grace: int | None, path: str) -> list[Cause]:
    """``kind`` is "liveness", "readiness" or "startup"."""
    if probe is None:
        return []
    causes = _handler(
        (("exec", probe.exec), ("httpGet", probe.http_get), ("tcpSocket", probe.tcp_socket)),
        grace,
        path,
    )
    causes.extend(non_negative(probe.initial_delay_seconds, f"{path}.initialDelaySeconds"))
    # Kubernetes reads an explicit 0 as "unset" and defaults it; corral keeps
    # what was sent, so a zero would really mean zero and is refused.
    for wire, value in (
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ):
        if value < 0:
            causes.append(invalid(child(path, wire), value, IS_NEGATIVE))
        elif value == 0:
            causes.append(invalid(child(path, wire), value, "must be greater than or equal to 1"))
    tgps = probe.termination_grace_period_seconds
    if tgps is not None and tgps <= 0:
        causes.append(
            invalid(f"{path}.terminationGracePeriodSeconds", tgps, "must be greater than 0")
        )
    if kind == "readiness" and tgps is not None:
        causes.append(
            invalid(
                f"{path}.terminationGracePeriodSeconds",
                tgps,
                "must not be set for readinessProbes",
            )
        )
    if kind != "readiness" and probe.success_threshold != 1:
        causes.append(invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    return causes


# --- security context ---------------------------------------------------------------------


def seccomp_profile(profile: SeccompProfile | None, path: str) -> list[Cause]:
    if profile is None:
        return []
    local_path = f"{path}.localhostProfile"
    if profile.type == "Localhost":
        if profile.localhost_profile is None:
            return [required(local_path, "must be set when seccomp type is Localhost")]
        return local_descending_path(profile.localhost_profile, local_path)
    if profile.localhost_profile is not None:
        return [invalid(local_path, profile, "can only be set when seccomp type is Localhost")]
    return []


def _security_context(sc: SecurityContext | None, path: str) -> list[Cause]:
    if sc is None:
        return []
    causes = id_in_range(sc.run_as_user, f"{path}.runAsUser")
    causes.extend(id_in_range(sc.run_as_group, f"{path}.runAsGroup"))
    causes.extend(seccomp_profile(sc.seccomp_profile, f"{path}.seccompProfile"))
    if sc.allow_privilege_escalation is False:
        if sc.privileged:
            causes.append(
                invalid(
                    path,
                    sc,
                    "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                )
            )
        if sc.capabilities and "CAP_SYS_ADMIN" in (sc.capabilities.add or ()):
            causes.append(
                invalid(
                    path,
                    sc,
                    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` "
                    "CAP_SYS_ADMIN",
                )
            )
    return causes


# --- containers ------------------------------------------------------------------------------


def container_common(ctr: Container, volumes: dict[str, Volume], path: str) -> list[Cause]:
    name_path = f"{path}.name"
    causes = [required(name_path)] if not ctr.name else dns_label(ctr.name, name_path)
    if not ctr.image:
        causes.append(required(f"{path}.image"))
    # Each write validates every container, so absent parts are skipped here
    # rather than in a call that would return nothing.
    if ctr.ports:
        causes.extend(validate_ports(ctr.ports, f"{path}.ports"))
    if ctr.env:
        causes.extend(validate_env(ctr.env, f"{path}.env"))
    if ctr.env_from:
        causes.extend(validate_env_from(ctr.env_from, f"{path}.envFrom"))
    if ctr.volume_mounts:
        causes.extend(validate_mounts(ctr, volumes, f"{path}.volumeMounts"))
    if ctr.resources is not None:
        causes.extend(validate_resources(ctr.resources, f"{path}.resources"))
    if ctr.security_context is not None:
        causes.extend(_security_context(ctr.security_context, f"{path}.securityContext"))
    return causes


def validate_containers(
    containers: list[Container], volumes: dict[str, Volume], grace: int | None, path: str
) -> list[Cause]:
    if not containers:
        return [required(path)]
    causes: list[Cause] = []
    names: set[str] = set()
    for i, ctr in enumerate(containers):
        ctr_path = f"{path}[{i}]"
        causes.extend(container_common(ctr, volumes, ctr_path))
        if ctr.name in names:
            causes.append(duplicate(f"{ctr_path}.name", ctr.name))
        else:
            names.add(ctr.name)
        if ctr.lifecycle is not None:
            lifecycle_path = f"{ctr_path}.lifecycle"
            if ctr.lifecycle.post_start is not None:
                causes.extend(
                    lifecycle_handler(
                        ctr.lifecycle.post_start, grace, f"{lifecycle_path}.postStart"
                    )
                )
            if ctr.lifecycle.pre_stop is not None:
                causes.extend(
                    lifecycle_handler(ctr.lifecycle.pre_stop, grace, f"{lifecycle_path}.preStop")
                )
        for wire, kind, probe in (
            ("livenessProbe", "liveness", ctr.liveness_probe),
            ("readinessProbe", "readiness", ctr.readiness_probe),
            ("startupProbe", "startup", ctr.startup_probe),
        ):
            if probe is not None:
                causes.extend(validate_probe(probe, kind, grace, f"{ctr_path}.{wire}"))
    causes.extend(host_port_conflicts((f"{path}[{i}]", c) for i, c in enumerate(containers)))
    return causes


_INIT_FORBIDDEN = "may not be set for init containers without restartPolicy=Always"


def validate_init_containers(
    init: list[Container], regular: list[Container], volumes: dict[str, Volume], path: str
) -> list[Cause]:
    causes: list[Cause] = []
    names = {c.name for c in regular}
    for i, ctr in enumerate(init):
        ctr_path = f"{path}[{i}]"
        causes.extend(container_common(ctr, volumes, ctr_path))
        # Names are unique across init and regular containers together.
        if ctr.name in names:
            causes.append(duplicate(f"{ctr_path}.name", ctr.name))
        elif ctr.name:
            names.add(ctr.name)
        # Init containers run one at a time, so only clashes within one count.
        causes.extend(host_port_conflicts(((ctr_path, ctr),)))
        # corral has no restartable ("sidecar") init containers.
        for wire, value in (
            ("lifecycle", ctr.lifecycle),
            ("livenessProbe", ctr.liveness_probe),
            ("readinessProbe", ctr.readiness_probe),
            ("startupProbe", ctr.startup_probe),
        ):
            if value is not None:
                causes.append(forbidden(child(ctr_path, wire), _INIT_FORBIDDEN))
    return causes
