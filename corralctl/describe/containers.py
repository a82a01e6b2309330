"""A pod's containers as kubectl describes them: state, resources, probes, environment, mounts."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from corral.api.quantity import to_int, to_milli
from corral.objects import Obj
from corralctl.describe.formatting import (
    NONE,
    format_time,
    go_bool,
    go_quote,
    go_value,
    int_or_string,
    or_none,
    quantity_text,
    title_bool,
)
from corralctl.describe.quantities import ZERO, Qty, resource_list
from corralctl.describe.tabwriter import PrefixWriter


def _container_ports(ports: list[Obj], key: str) -> str:
    return ", ".join(f"{p.get(key) or 0}/{p.get('protocol') or 'TCP'}" for p in ports)


def _write_container_state(w: PrefixWriter, title: str, state: Obj) -> None:
    if "running" in state:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{format_time(state['running'].get('startedAt'))}\n")
    elif "terminated" in state:
        done = state["terminated"] or {}
        w.write(2, f"{title}:\tTerminated\n")
        if done.get("reason"):
            w.write(3, f"Reason:\t{done['reason']}\n")
        if done.get("message"):
            w.write(3, f"Message:\t{done['message']}\n")
        w.write(3, f"Exit Code:\t{done.get('exitCode', 0)}\n")
        if int(done.get("signal") or 0) > 0:
            w.write(3, f"Signal:\t{done['signal']}\n")
        w.write(3, f"Started:\t{format_time(done.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{format_time(done.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")
        reason = (state.get("waiting") or {}).get("reason")
        if reason:
            w.write(3, f"Reason:\t{reason}\n")


def write_resources(w: PrefixWriter, resources: Obj | None, level: int) -> None:
    for title, key in (("Limits", "limits"), ("Requests", "requests")):
        values = (resources or {}).get(key) or {}
        if values:
            w.write(level, f"{title}:\n")
        for name in sorted(values):
            w.write(level + 1, f"{name}:\t{quantity_text(values[name])}\n")


def _probe_url(get: Obj) -> str:
    scheme = str(get.get("scheme") or "").lower()
    port = "" if get.get("port") is None else str(get["port"])
    host = str(get.get("host") or "")
    if port:
        host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    path = str(get.get("path") or "")
    if path and not path.startswith("/") and host:
        path = "/" + path
    prefix = f"{scheme}:" if scheme else ""
    if scheme or host:
        prefix += "//" + host
    return prefix + path


def describe_probe(probe: Obj) -> str:
    """``DescribeProbe``: the action, then its timing, with the API's defaults for unset fields."""
    attrs = (
        f"delay={probe.get('initialDelaySeconds') or 0}s "
        f"timeout={probe.get('timeoutSeconds') or 1}s "
        f"period={probe.get('periodSeconds') or 10}s "
        f"#success={probe.get('successThreshold') or 1} "
        f"#failure={probe.get('failureThreshold') or 3}"
    )
    if probe.get("exec") is not None:
        return f"exec {go_value(probe['exec'].get('command') or [])} {attrs}"
    if probe.get("httpGet") is not None:
        return f"http-get {_probe_url(probe['httpGet'])} {attrs}"
    if probe.get("tcpSocket") is not None:
        socket = probe["tcpSocket"]
        return f"tcp-socket {socket.get('host') or ''}:{int_or_string(socket.get('port'))} {attrs}"
    if probe.get("grpc") is not None:
        grpc = probe["grpc"]
        return f"grpc <pod>:{grpc.get('port', 0)} {grpc.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


def _pod_field(pod: Obj, path: str) -> str:
    """``fieldpath.ExtractFieldPathAsString``: kubectl resolves only metadata fields."""
    meta = pod.get("metadata") or {}
    subscripted = re.fullmatch(r"(metadata\.(?:labels|annotations))\['(.*)'\]", path)
    if subscripted:
        values = meta.get(subscripted.group(1).split(".")[1]) or {}
        return str(values.get(subscripted.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f"{k}={go_quote(str(v))}" for k, v in sorted(values.items()))
    simple = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
    return str(meta.get(simple[path], "")) if path in simple else ""


def _container_resource_value(ref: Obj, container: Obj) -> str:
    """``ExtractContainerResourceValue``: a resource of the container, in units of the divisor."""
    kind, _, name = str(ref.get("resource") or "").partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        return ""
    values = resource_list((container.get("resources") or {}).get(kind))
    divisor_text = ref.get("divisor")
    divisor = resource_list({"d": divisor_text}).get("d") if divisor_text else None
    if divisor is None or divisor.value == 0:
        divisor = Qty(Decimal(1), False)
    value = values.get(name, ZERO)
    if name == "cpu":
        return str(math.ceil(to_milli(value.value) / to_milli(divisor.value)))
    return str(math.ceil(to_int(value.value) / to_int(divisor.value)))


def _write_env(w: PrefixWriter, container: Obj, pod: Obj | None) -> None:
    env = container.get("env") or []
    w.write(2, "Environment:" + ("" if env else f"\t{NONE}") + "\n")
    for var in env:
        name = var.get("name", "")
        source = var.get("valueFrom")
        if source is None:
            for i, line in enumerate(str(var.get("value") or "").split("\n")):
                w.write(3, f"{name}:\t{line}\n" if i == 0 else f"\t{line}\n")
            continue
        if source.get("fieldRef") is not None:
            ref = source["fieldRef"]
            value = _pod_field(pod, ref.get("fieldPath", "")) if pod is not None else ""
            w.write(
                3,
                f"{name}:\t{value} ({ref.get('apiVersion') or 'v1'}:{ref.get('fieldPath', '')})\n",
            )
        elif source.get("resourceFieldRef") is not None:
            ref = source["resourceFieldRef"]
            value = _container_resource_value(ref, container)
            if value == "0" and ref.get("resource") in ("limits.cpu", "limits.memory"):
                value = "node allocatable"
            w.write(3, f"{name}:\t{value} ({ref.get('resource', '')})\n")
        elif source.get("secretKeyRef") is not None:
            ref = source["secretKeyRef"]
            w.write(
                3,
                f"{name}:\t<set to the key '{ref.get('key', '')}' in secret "
                f"'{ref.get('name', '')}'>\tOptional: {go_bool(ref.get('optional'))}\n",
            )
        elif source.get("configMapKeyRef") is not None:
            ref = source["configMapKeyRef"]
            w.write(
                3,
                f"{name}:\t<set to the key '{ref.get('key', '')}' of config map "
                f"'{ref.get('name', '')}'>\tOptional: {go_bool(ref.get('optional'))}\n",
            )


def _write_env_from(w: PrefixWriter, container: Obj) -> None:
    w.write(2, "Environment Variables from:\n")
    for source in container.get("envFrom") or []:
        kind, ref = ("", {})
        if source.get("configMapRef") is not None:
            kind, ref = "ConfigMap", source["configMapRef"]
        elif source.get("secretRef") is not None:
            kind, ref = "Secret", source["secretRef"]
        prefix = source.get("prefix")
        described = f"{kind} with prefix '{prefix}'" if prefix else kind
        w.write(
            3, f"{ref.get('name', '')}\t{described}\tOptional: {go_bool(ref.get('optional'))}\n"
        )


def _write_mounts(w: PrefixWriter, container: Obj) -> None:
    mounts = container.get("volumeMounts") or []
    w.write(2, "Mounts:" + ("" if mounts else f"\t{NONE}") + "\n")
    for mount in sorted(mounts, key=lambda m: str(m.get("mountPath", ""))):
        flags = ["ro" if mount.get("readOnly") else "rw"]
        if mount.get("subPath"):
            flags.append(f"path={go_quote(str(mount['subPath']))}")
        w.write(
            3, f"{mount.get('mountPath', '')} from {mount.get('name', '')} ({','.join(flags)})\n"
        )
    devices = container.get("volumeDevices") or []
    if devices:
        w.write(2, "Devices:\n")
        for device in sorted(devices, key=lambda d: str(d.get("devicePath", ""))):
            w.write(3, f"{device.get('devicePath', '')} from {device.get('name', '')}\n")


def write_containers(
    w: PrefixWriter,
    label: str,
    containers: list[Obj],
    statuses: list[Obj] | None,
    pod: Obj | None,
    space: str = "",
) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{space}{label}:{'' if containers else ' ' + NONE}\n")
    for container in containers:
        status = by_name.get(container.get("name"))
        w.write(1, f"{' ' if space else ''}{container.get('name', '')}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.get('containerID', '')}\n")
        w.write(2, f"Image:\t{container.get('image', '')}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = container.get("ports") or []
        for title, key in (("Port", "containerPort"), ("Host Port", "hostPort")):
            text = _container_ports(ports, key)
            plural = "s" if "," in text else ""
            w.write(2, f"{title}{plural}:\t{or_none(text)}\n")
        seccomp = (container.get("securityContext") or {}).get("seccompProfile")
        if seccomp:
            w.write(2, f"SeccompProfile:\t{seccomp.get('type', '')}\n")
            if seccomp.get("type") == "Localhost":
                w.write(3, f"LocalhostProfile:\t{seccomp.get('localhostProfile', '')}\n")
        for title, key in (("Command", "command"), ("Args", "args")):
            if container.get(key):
                w.write(2, f"{title}:\n")
                for part in container[key]:
                    for line in str(part).split("\n"):
                        w.write(3, f"{line}\n")
        if status is not None:
            _write_container_state(w, "State", status.get("state") or {})
            last = status.get("lastState") or {}
            if last.get("terminated") is not None:
                _write_container_state(w, "Last State", last)
            w.write(2, f"Ready:\t{title_bool(status.get('ready'))}\n")
            w.write(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        write_resources(w, container.get("resources"), 2)
        for title, key in (
            ("Liveness", "livenessProbe"),
            ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe"),
        ):
            if container.get(key) is not None:
                w.write(2, f"{title}:\t{describe_probe(container[key])}\n")
        if container.get("envFrom"):
            _write_env_from(w, container)
        _write_env(w, container, pod)
        _write_mounts(w, container)
