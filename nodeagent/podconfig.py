"""From a pod's spec to what the runtime needs: environment, mounts, limits, security.

Environment variables are resolved as the kubelet resolves them: literal
values, ``fieldRef``, ``resourceFieldRef``, ``configMapKeyRef`` and
``secretKeyRef``, ``envFrom`` with prefixes, and ``$(VAR)`` references to
earlier variables (``$$`` escapes a dollar), which also expand in
``command`` and ``args``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from corral.api.quantity import QuantityError, parse_quantity, to_int, to_milli
from corral.objects import Obj, meta, spec, status
from nodeagent.runtime.base import ContainerConfig, Mount, Role
from nodeagent.subpath import SubPathError, bind_beneath
from nodeagent.volumes import PreparedVolume

Fetch = Callable[[str, str], Awaitable[Obj | None]]

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
# Docker's default capabilities, less NET_RAW: what Kubernetes' baseline allows.
DEFAULT_DROPPED_CAPABILITIES = ["NET_RAW"]


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def spec_hash(container: Obj) -> str:
    """A fingerprint of a container's spec: a change means "recreate the container"."""
    return hashlib.sha256(orjson.dumps(container, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _field_value(pod: Obj, path: str) -> str:
    metadata = meta(pod)
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec(pod).get("nodeName"),
        "spec.serviceAccountName": spec(pod).get("serviceAccountName"),
        "status.hostIP": status(pod).get("hostIP"),
        "status.podIP": status(pod).get("podIP"),
    }
    if path == "status.podIPs":
        return ",".join(p.get("ip", "") for p in status(pod).get("podIPs") or [])
    if path not in simple:
        raise ConfigError(f'unsupported fieldRef "{path}"')
    return str(simple[path] or "")


def _resource_value(pod: Obj, container: Obj, ref: Obj, node_allocatable: Obj) -> str:
    target = container
    if ref.get("containerName"):
        spec = pod.get("spec") or {}
        target = next(
            (c for c in spec.get("containers") or [] if c.get("name") == ref["containerName"]),
            container,
        )
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    resources = (target.get("resources") or {}).get(kind) or {}
    raw = resources.get(resource)
    if raw is None and kind == "limits":
        raw = node_allocatable.get(resource)  # an unset limit reads as the node's capacity
    if raw is None:
        return "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    value = parse_quantity(raw) / divisor
    return str(math.ceil(value))


async def resolve_env(
    pod: Obj,
    container: Obj,
    get_configmap: Fetch,
    get_secret: Fetch,
    node_allocatable: Obj,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    namespace = meta(pod).get("namespace", "default")
    env: dict[str, str] = dict(extra or {})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        if source.get("configMapRef") is not None:
            ref = source["configMapRef"]
            found = await get_configmap(namespace, ref.get("name", ""))
            if found is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'configmap "{ref.get("name")}" not found')
            for key, value in (found.get("data") or {}).items():
                env[prefix + key] = value
        elif source.get("secretRef") is not None:
            ref = source["secretRef"]
            found = await get_secret(namespace, ref.get("name", ""))
            if found is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'secret "{ref.get("name")}" not found')
            for key, value in (found.get("data") or {}).items():
                env[prefix + key] = base64.b64decode(value).decode(errors="replace")
    for var in container.get("env") or []:
        name = var["name"]
        if var.get("valueFrom") is None:
            env[name] = expand(var.get("value") or "", env)
            continue
        source = var["valueFrom"]
        if source.get("fieldRef") is not None:
            env[name] = _field_value(pod, source["fieldRef"].get("fieldPath", ""))
        elif source.get("resourceFieldRef") is not None:
            env[name] = _resource_value(
                pod, container, source["resourceFieldRef"], node_allocatable
            )
        elif source.get("configMapKeyRef") is not None:
            ref = source["configMapKeyRef"]
            found = await get_configmap(namespace, ref.get("name", ""))
            value = ((found or {}).get("data") or {}).get(ref.get("key", ""))
            if value is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(
                    f"couldn't find key {ref.get('key')} in ConfigMap {namespace}/{ref.get('name')}"
                )
            env[name] = value
        elif source.get("secretKeyRef") is not None:
            ref = source["secretKeyRef"]
            found = await get_secret(namespace, ref.get("name", ""))
            encoded = ((found or {}).get("data") or {}).get(ref.get("key", ""))
            if encoded is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(
                    f"couldn't find key {ref.get('key')} in Secret {namespace}/{ref.get('name')}"
                )
            env[name] = base64.b64decode(encoded).decode(errors="replace")
    return env


def _quantity_milli(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return to_milli(parse_quantity(value))
    except QuantityError:
        # The API server refuses malformed quantities, so a stored pod has
        # none; were one to get here, no limit beats a pod that never starts.
        return None


def _quantity_int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return to_int(parse_quantity(value))
    except QuantityError:
        return None  # as in _quantity_milli


def check_non_root(run_as_user: Any, image_user: str) -> None:
    """The kubelet's runAsNonRoot rule: refuse uid 0, by number or by the image's default."""
    if run_as_user is not None:
        if str(run_as_user) == "0":
            raise ConfigError("container's runAsUser breaks non-root policy")
        return
    name = image_user.partition(":")[0]
    if name in ("", "0", "root"):
        raise ConfigError("container has runAsNonRoot and image will run as root")
    if not name.isdigit():
        # A name could map to uid 0 inside the image; only a number can be checked.
        raise ConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({name}), "
            "cannot verify user is non-root"
        )


def container_config(
    pod: Obj,
    container: Obj,
    role: Role,
    env: dict[str, str],
    volumes: dict[str, PreparedVolume],
    extra_mounts: list[Mount],
    restart_count: int,
    subpath_root: Path | None = None,
    image_user: str = "",
) -> ContainerConfig:
    metadata = meta(pod)
    spec = pod.get("spec") or {}
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    security = container.get("securityContext") or {}
    pod_security = spec.get("securityContext") or {}
    mounts = list(extra_mounts) + _volume_mounts(container, env, volumes, subpath_root)
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    group = security.get("runAsGroup", pod_security.get("runAsGroup"))
    capabilities = security.get("capabilities") or {}
    non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
    if non_root is True:
        check_non_root(user, image_user)
    seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile") or {}
    privileged = bool(security.get("privileged"))
    return ContainerConfig(
        pod_uid=metadata.get("uid", ""),
        pod_name=metadata.get("name", ""),
        pod_namespace=metadata.get("namespace", "default"),
        name=container["name"],
        role=role,
        image=container.get("image", ""),
        command=[expand(part, env) for part in container["command"]]
        if container.get("command")
        else None,
        args=[expand(part, env) for part in container["args"]] if container.get("args") else None,
        env=env,
        working_dir=container.get("workingDir"),
        mounts=mounts,
        labels={},
        restart_count=restart_count,
        spec_hash=spec_hash(container),
        cpu_limit_milli=_quantity_milli(limits.get("cpu")),
        cpu_request_milli=_quantity_milli(requests.get("cpu")),
        memory_limit_bytes=_quantity_int(limits.get("memory")),
        tty=bool(container.get("tty")),
        stdin=bool(container.get("stdin")),
        privileged=privileged,
        read_only_root=bool(security.get("readOnlyRootFilesystem")),
        user=(f"{user}:{group}" if group is not None else str(user)) if user is not None else None,
        cap_add=list(capabilities.get("add") or []),
        cap_drop=[] if privileged else _dropped_capabilities(capabilities),
        # no-new-privileges is on unless the container explicitly allows escalation.
        no_new_privileges=security.get("allowPrivilegeEscalation") is not True,
        seccomp_unconfined=seccomp.get("type") == "Unconfined",
        grace_seconds=int(spec.get("terminationGracePeriodSeconds", 30)),
        host_network=bool(spec.get("hostNetwork")),
    )


def _dropped_capabilities(capabilities: Obj) -> list[str]:
    """What the container drops: its own list, and the defaults it does not add back."""
    dropped = list(capabilities.get("drop") or [])
    for default in DEFAULT_DROPPED_CAPABILITIES:
        if default not in dropped and default not in (capabilities.get("add") or []):
            dropped.append(default)
    return dropped


def _volume_mounts(
    container: Obj,
    env: dict[str, str],
    volumes: dict[str, PreparedVolume],
    subpath_root: Path | None,
) -> list[Mount]:
    mounts = []
    for index, mount in enumerate(container.get("volumeMounts") or []):
        volume = volumes.get(mount.get("name", ""))
        if volume is None:
            raise ConfigError(f'volume "{mount.get("name")}" is not prepared')
        source = volume.path
        if mount.get("subPath"):
            if subpath_root is None:
                raise ConfigError("subPath mounts need the pod's directory on this node")
            staging = subpath_root / container["name"] / str(index)
            sub_path = expand(mount["subPath"], env)
            try:
                source = str(bind_beneath(Path(volume.path), sub_path, staging))
            except (SubPathError, OSError) as error:
                raise ConfigError(str(error)) from None
        propagation = {"HostToContainer": "rslave", "Bidirectional": "rshared"}.get(
            mount.get("mountPropagation") or "", ""
        )
        mounts.append(
            Mount(
                source=source,
                target=mount["mountPath"],
                read_only=bool(mount.get("readOnly")) or volume.read_only,
                propagation=propagation,
            )
        )
    return mounts
