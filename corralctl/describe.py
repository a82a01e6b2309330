"""``corral describe``: kubectl's detailed, human-oriented view of objects.

The output is built the way kubectl builds it: lines of tab-separated cells
written at an indentation level, then aligned as Go's ``text/tabwriter``
aligns them (minimum width 0, padding 2). Alignment therefore follows
kubectl's rules exactly: a run of consecutive lines that have a cell in a
column shares that column's width, and a line without a tab ends the run.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from corral.api.errors import ApiError
from corral.api.fields import escape_field_value
from corral.api.labels import SelectorError, selector_from_dict, selector_from_set
from corral.api.quantity import (
    QuantityError,
    canonicalize_quantity,
    format_quantity,
    parse_quantity,
    to_int,
    to_milli,
)
from corral.api.resources import Registry, ResourceType
from corralctl import manifests
from corralctl.context import CliContext, UsageError

Obj = dict[str, Any]

NONE = "<none>"
UNSET = "<unset>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION_LEN = 140
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"
# How Go prints a zero time.Time in RFC1123Z: kubectl shows it for unset timestamps.
ZERO_TIME = "Mon, 01 Jan 0001 00:00:00 +0000"


# --- the client describe needs ----------------------------------------------------------------


class ApiClient(Protocol):
    async def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj: ...

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Obj: ...


# --- tab alignment, as Go's text/tabwriter does it --------------------------------------------


def tabwrite(text: str, padding: int = 2) -> str:
    """Align tab-separated cells like ``tabwriter.NewWriter(out, 0, 8, padding, ' ', 0)``."""
    rows = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format_block(rows, 0, len(rows), [], padding, out)
    return "\n".join(out)


def _format_block(
    rows: list[list[str]], start: int, end: int, widths: list[int], padding: int, out: list[str]
) -> None:
    column = len(widths)
    line0 = this = start
    while this < end:
        if column >= len(rows[this]) - 1:
            this += 1
            continue
        _emit_rows(rows, line0, this, widths, out)
        line0 = this
        width = 0
        while this < end and column < len(rows[this]) - 1:
            width = max(width, len(rows[this][column]) + padding)
            this += 1
        _format_block(rows, line0, this, [*widths, width], padding, out)
        line0 = this
    _emit_rows(rows, line0, end, widths, out)


def _emit_rows(
    rows: list[list[str]], start: int, end: int, widths: list[int], out: list[str]
) -> None:
    for row in rows[start:end]:
        out.append(
            "".join(
                cell.ljust(widths[j]) if j < len(widths) else cell for j, cell in enumerate(row)
            )
        )


class PrefixWriter:
    """kubectl's PrefixWriter: text at two spaces per level, aligned when rendered."""

    def __init__(self) -> None:
        self._segments: list[list[str]] = [[]]

    def write(self, level: int, text: str) -> None:
        self._segments[-1].append("  " * level + text)

    def flush(self) -> None:
        """End the current alignment run, as kubectl does before the events table."""
        self._segments.append([])

    def render(self) -> str:
        return "".join(tabwrite("".join(segment)) for segment in self._segments)


# --- small formatting helpers -------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: Any) -> str:
    """RFC 1123 with a numeric zone, in local time, as kubectl prints timestamps."""
    parsed = parse_time(value)
    if parsed is None:
        return ZERO_TIME
    return parsed.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def human_duration(delta: timedelta) -> str:
    """apimachinery's ``duration.HumanDuration``: ``45s``, ``3m20s``, ``5h``, ``12d``."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d" if rest == 0 else f"{days}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{years}y"


def _go_bool(value: Any) -> str:
    return "true" if value else "false"


def _title_bool(value: Any) -> str:
    return "True" if value else "False"


def _or_none(text: str) -> str:
    return text or NONE


def _format_labels(labels: Mapping[str, str] | None) -> str:
    """``labels.FormatLabels``: ``a=1,b=2`` sorted by key, or ``<none>``."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or NONE


def _label_selector_text(selector: Mapping[str, Any] | None) -> str:
    """``metav1.LabelSelectorAsSelector(...).String()``; ``<error>`` if it does not parse."""
    try:
        return str(selector_from_dict(selector))
    except SelectorError:
        return "<error>"


def _controller_of(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def _controlled_by(obj: Obj) -> str:
    ref = _controller_of(obj)
    return f"{ref.get('kind', '')}/{ref.get('name', '')}" if ref else ""


def _quantity_text(value: Any) -> str:
    try:
        return canonicalize_quantity(value)
    except (QuantityError, TypeError):
        return str(value)


def _int_or_string(value: Any) -> str:
    return "<nil>" if value is None else str(value)


def _go_value(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return _go_bool(value)
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _go_quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _write_multiline_map(
    w: PrefixWriter, title: str, values: Mapping[str, str] | None, initial_indent: str = ""
) -> None:
    """``printLabelsMultilineWithIndent``: the first pair beside the title, the rest under it."""
    w.write(0, f"{initial_indent}{title}:\t")
    if not values:
        w.write(0, f"{NONE}\n")
        return
    for i, key in enumerate(sorted(values)):
        if i:
            w.write(0, f"{initial_indent}\t")
        w.write(0, f"{key}={values[key]}\n")


def _write_annotations(w: PrefixWriter, title: str, annotations: Mapping[str, str] | None) -> None:
    """``printAnnotationsMultiline``: long or multi-line values go on lines of their own."""
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in annotations or {} if k != LAST_APPLIED)
    if not keys:
        w.write(0, f"{NONE}\n")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = str((annotations or {})[key]).removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for line in value.split("\n"):
                w.write(0, f"\t  {_shorten(line, MAX_ANNOTATION_LEN - 2)}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _shorten(text: str, limit: int) -> str:
    return text[:limit] + "..." if len(text) > limit else text


def _write_meta_header(w: PrefixWriter, obj: Obj, *, namespaced: bool = True) -> None:
    meta = obj.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    if namespaced:
        w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _write_multiline_map(w, "Labels", meta.get("labels"))
    _write_annotations(w, "Annotations", meta.get("annotations"))


# --- quantities summed the way kubectl sums them ----------------------------------------------


class _Qty(NamedTuple):
    """A quantity's value and whether it prints in binary (``Mi``) form.

    A sum keeps the form of its first term, as ``Quantity.Add`` does.
    """

    value: Decimal
    binary: bool

    def __str__(self) -> str:
        return format_quantity(self.value, binary=self.binary)


ZERO = _Qty(Decimal(0), False)
_BINARY_SUFFIX = re.compile(r"[KMGTPE]i$")


def _resource_list(values: Mapping[str, Any] | None) -> dict[str, _Qty]:
    out: dict[str, _Qty] = {}
    for name, text in (values or {}).items():
        try:
            out[name] = _Qty(parse_quantity(text), bool(_BINARY_SUFFIX.search(str(text))))
        except (QuantityError, TypeError):
            continue
    return out


def _add_resources(into: dict[str, _Qty], more: Mapping[str, _Qty]) -> None:
    for name, q in more.items():
        have = into.get(name)
        into[name] = q if have is None else _Qty(have.value + q.value, have.binary)


def _max_resources(into: dict[str, _Qty], other: Mapping[str, _Qty]) -> None:
    for name, q in other.items():
        if name not in into or q.value > into[name].value:
            into[name] = q


def _pod_totals(pod: Obj, which: str) -> dict[str, _Qty]:
    """kubectl's ``podRequests``/``podLimits``: containers summed, init containers maxed,
    restartable (sidecar) init containers counted in both, plus the pod's overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, _Qty] = {}
    for container in spec.get("containers") or []:
        _add_resources(total, _resource_list((container.get("resources") or {}).get(which)))
    sidecars: dict[str, _Qty] = {}
    init_max: dict[str, _Qty] = {}
    for container in spec.get("initContainers") or []:
        own = _resource_list((container.get("resources") or {}).get(which))
        if container.get("restartPolicy") == "Always":
            _add_resources(total, own)
            _add_resources(sidecars, own)
            effective = dict(sidecars)
        else:
            effective = dict(own)
            _add_resources(effective, sidecars)
        _max_resources(init_max, effective)
    _max_resources(total, init_max)
    overhead = _resource_list(spec.get("overhead"))
    if which == "requests":
        _add_resources(total, overhead)
    else:
        _add_resources(total, {k: v for k, v in overhead.items() if k in total})
    return total


def _percent(part: _Qty, whole: _Qty, milli: bool) -> int:
    convert = to_milli if milli else to_int
    denominator = convert(whole.value)
    if denominator == 0:
        return 0
    return int(convert(part.value) / denominator * 100)


def pod_qos_class(pod: Obj) -> str:
    """The pod's QoS class: ``status.qosClass``, else computed as the kubelet does."""
    if (pod.get("status") or {}).get("qosClass"):
        return str(pod["status"]["qosClass"])
    spec = pod.get("spec") or {}
    requests: dict[str, _Qty] = {}
    limits: dict[str, _Qty] = {}
    guaranteed = True
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = container.get("resources") or {}
        own_requests = {
            k: v
            for k, v in _resource_list(resources.get("requests")).items()
            if k in ("cpu", "memory") and v.value > 0
        }
        own_limits = {
            k: v
            for k, v in _resource_list(resources.get("limits")).items()
            if k in ("cpu", "memory") and v.value > 0
        }
        _add_resources(requests, own_requests)
        _add_resources(limits, own_limits)
        if not {"cpu", "memory"} <= own_limits.keys():
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if (
        guaranteed
        and all(name in limits and limits[name].value == q.value for name, q in requests.items())
        and len(requests) == len(limits)
    ):
        return "Guaranteed"
    return "Burstable"


# --- what a describer may fetch -----------------------------------------------------------------


@dataclass
class DescribeSource:
    """The client, the registry and the settings the describers share."""

    client: ApiClient
    registry: Registry
    show_events: bool = True
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def rt(self, api_version: str, kind: str) -> ResourceType:
        found = self.registry.by_kind(api_version, kind)
        if found is None:
            raise UsageError(f'no matches for kind "{kind}" in version "{api_version}"')
        return found

    def since(self, value: Any) -> str:
        """How long ago ``value`` was, or ``<unknown>`` when it is unset."""
        parsed = parse_time(value)
        if parsed is None:
            return "<unknown>"
        return human_duration(self.now - parsed)

    async def items(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        listed = await self.client.list(
            rt,
            namespace or None,
            all_namespaces=not namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        items: list[Obj] = listed.get("items") or []
        return items

    async def get_or_none(self, rt: ResourceType, name: str, namespace: str | None) -> Obj | None:
        try:
            return await self.client.get(rt, name, namespace)
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    async def events(self, obj: Obj, *, uid: str | None = None) -> list[Obj] | None:
        """Events about ``obj``, or None when events are not shown.

        Like kubectl, a failed search shows as no events rather than an error.
        """
        if not self.show_events:
            return None
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or ""
        terms = {
            "involvedObject.kind": obj.get("kind") or "",
            "involvedObject.name": meta.get("name") or "",
            "involvedObject.namespace": namespace,
            "involvedObject.uid": meta.get("uid") if uid is None else uid,
        }
        selector = ",".join(
            f"{key}={escape_field_value(str(value))}"
            for key, value in sorted(terms.items())
            if value or key in ("involvedObject.name", "involvedObject.namespace")
        )
        try:
            return await self.items(self.rt("v1", "Event"), namespace, field_selector=selector)
        except ApiError:
            return []


Describer = Callable[[DescribeSource, Obj], Awaitable[str]]


# --- events -------------------------------------------------------------------------------------


def _event_sort_time(event: Obj) -> datetime:
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return datetime.min.replace(tzinfo=UTC)


def _event_age(src: DescribeSource, event: Obj) -> str:
    first = (
        src.since(event["eventTime"])
        if parse_time(event.get("eventTime"))
        else src.since(event.get("firstTimestamp"))
    )
    series = event.get("series")
    if series:
        last = src.since(series.get("lastObservedTime"))
        return f"{last} (x{int(series.get('count') or 0)} over {first})"
    count = int(event.get("count") or 0)
    if count > 1:
        return f"{src.since(event.get('lastTimestamp'))} (x{count} over {first})"
    return first


def write_events(w: PrefixWriter, src: DescribeSource, events: list[Obj] | None) -> None:
    """``DescribeEvents``: oldest first, with repeats shown as ``12m (x4 over 40m)``."""
    if events is None:
        return
    if not events:
        w.write(0, f"Events:\t{NONE}\n")
        return
    w.flush()
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for event in sorted(events, key=_event_sort_time):
        source = (event.get("source") or {}).get("component") or event.get("reportingComponent", "")
        message = str(event.get("message") or "").strip()
        w.write(
            1,
            f"{event.get('type', '')}\t{event.get('reason', '')}\t"
            f"{_event_age(src, event)}\t{source}\t{message}\n",
        )


# --- pods and their containers ------------------------------------------------------------------


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


def _write_resources(w: PrefixWriter, resources: Obj | None, level: int) -> None:
    for title, key in (("Limits", "limits"), ("Requests", "requests")):
        values = (resources or {}).get(key) or {}
        if values:
            w.write(level, f"{title}:\n")
        for name in sorted(values):
            w.write(level + 1, f"{name}:\t{_quantity_text(values[name])}\n")


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
        return f"exec {_go_value(probe['exec'].get('command') or [])} {attrs}"
    if probe.get("httpGet") is not None:
        return f"http-get {_probe_url(probe['httpGet'])} {attrs}"
    if probe.get("tcpSocket") is not None:
        socket = probe["tcpSocket"]
        return f"tcp-socket {socket.get('host') or ''}:{_int_or_string(socket.get('port'))} {attrs}"
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
        return "\n".join(f"{k}={_go_quote(str(v))}" for k, v in sorted(values.items()))
    simple = {"metadata.name": "name", "metadata.namespace": "namespace", "metadata.uid": "uid"}
    return str(meta.get(simple[path], "")) if path in simple else ""


def _container_resource_value(ref: Obj, container: Obj) -> str:
    """``ExtractContainerResourceValue``: a resource of the container, in units of the divisor."""
    kind, _, name = str(ref.get("resource") or "").partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        return ""
    values = _resource_list((container.get("resources") or {}).get(kind))
    divisor_text = ref.get("divisor")
    divisor = _resource_list({"d": divisor_text}).get("d") if divisor_text else None
    if divisor is None or divisor.value == 0:
        divisor = _Qty(Decimal(1), False)
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
                f"'{ref.get('name', '')}'>\tOptional: {_go_bool(ref.get('optional'))}\n",
            )
        elif source.get("configMapKeyRef") is not None:
            ref = source["configMapKeyRef"]
            w.write(
                3,
                f"{name}:\t<set to the key '{ref.get('key', '')}' of config map "
                f"'{ref.get('name', '')}'>\tOptional: {_go_bool(ref.get('optional'))}\n",
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
            3, f"{ref.get('name', '')}\t{described}\tOptional: {_go_bool(ref.get('optional'))}\n"
        )


def _write_mounts(w: PrefixWriter, container: Obj) -> None:
    mounts = container.get("volumeMounts") or []
    w.write(2, "Mounts:" + ("" if mounts else f"\t{NONE}") + "\n")
    for mount in sorted(mounts, key=lambda m: str(m.get("mountPath", ""))):
        flags = ["ro" if mount.get("readOnly") else "rw"]
        if mount.get("subPath"):
            flags.append(f"path={_go_quote(str(mount['subPath']))}")
        w.write(
            3, f"{mount.get('mountPath', '')} from {mount.get('name', '')} ({','.join(flags)})\n"
        )
    devices = container.get("volumeDevices") or []
    if devices:
        w.write(2, "Devices:\n")
        for device in sorted(devices, key=lambda d: str(d.get("devicePath", ""))):
            w.write(3, f"{device.get('devicePath', '')} from {device.get('name', '')}\n")


def _write_containers(
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
            w.write(2, f"{title}{plural}:\t{_or_none(text)}\n")
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
            w.write(2, f"Ready:\t{_title_bool(status.get('ready'))}\n")
            w.write(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        _write_resources(w, container.get("resources"), 2)
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


def _optional(source: Obj) -> str:
    return _go_bool(source.get("optional"))


def _write_volume_source(w: PrefixWriter, volume: Obj) -> None:
    if volume.get("hostPath") is not None:
        source = volume["hostPath"]
        kind = NONE if source.get("type") is None else source["type"]
        w.write(
            2,
            "Type:\tHostPath (bare host directory volume)\n"
            f"    Path:\t{source.get('path', '')}\n    HostPathType:\t{kind}\n",
        )
    elif volume.get("emptyDir") is not None:
        source = volume["emptyDir"]
        size = (
            _resource_list({"s": source["sizeLimit"]}).get("s")
            if source.get("sizeLimit") is not None
            else None
        )
        limit = _quantity_text(source["sizeLimit"]) if size and size.value > 0 else UNSET
        w.write(
            2,
            "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
            f"    Medium:\t{source.get('medium', '')}\n    SizeLimit:\t{limit}\n",
        )
    elif volume.get("secret") is not None:
        source = volume["secret"]
        w.write(
            2,
            "Type:\tSecret (a volume populated by a Secret)\n"
            f"    SecretName:\t{source.get('secretName', '')}\n"
            f"    Optional:\t{_optional(source)}\n",
        )
    elif volume.get("configMap") is not None:
        source = volume["configMap"]
        w.write(
            2,
            "Type:\tConfigMap (a volume populated by a ConfigMap)\n"
            f"    Name:\t{source.get('name', '')}\n    Optional:\t{_optional(source)}\n",
        )
    elif volume.get("downwardAPI") is not None:
        w.write(
            2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n"
        )
        for item in volume["downwardAPI"].get("items") or []:
            if item.get("fieldRef") is not None:
                w.write(3, f"{item['fieldRef'].get('fieldPath', '')} -> {item.get('path', '')}\n")
            if item.get("resourceFieldRef") is not None:
                w.write(
                    3, f"{item['resourceFieldRef'].get('resource', '')} -> {item.get('path', '')}\n"
                )
    elif volume.get("projected") is not None:
        _write_projected(w, volume["projected"])
    elif volume.get("persistentVolumeClaim") is not None:
        source = volume["persistentVolumeClaim"]
        w.write(
            2,
            "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the "
            f"same namespace)\n    ClaimName:\t{source.get('claimName', '')}\n"
            f"    ReadOnly:\t{_go_bool(source.get('readOnly'))}\n",
        )
    elif volume.get("nfs") is not None:
        source = volume["nfs"]
        w.write(
            2,
            "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n"
            f"    Server:\t{source.get('server', '')}\n    Path:\t{source.get('path', '')}\n"
            f"    ReadOnly:\t{_go_bool(source.get('readOnly'))}\n",
        )
    else:
        w.write(1, "<unknown>\n")


def _write_projected(w: PrefixWriter, projected: Obj) -> None:
    w.write(2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n")
    for source in projected.get("sources") or []:
        if source.get("secret") is not None:
            w.write(
                2,
                f"SecretName:\t{source['secret'].get('name', '')}\n"
                f"    Optional:\t{_optional(source['secret'])}\n",
            )
        elif source.get("downwardAPI") is not None:
            w.write(2, "DownwardAPI:\ttrue\n")
        elif source.get("configMap") is not None:
            w.write(
                2,
                f"ConfigMapName:\t{source['configMap'].get('name', '')}\n"
                f"    Optional:\t{_optional(source['configMap'])}\n",
            )
        elif source.get("serviceAccountToken") is not None:
            seconds = source["serviceAccountToken"].get("expirationSeconds", 3607)
            w.write(2, f"TokenExpirationSeconds:\t{seconds}\n")


def _write_volumes(w: PrefixWriter, volumes: list[Obj], space: str = "") -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t{NONE}\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for volume in volumes:
        w.write(1, f"{' ' if space else ''}{volume.get('name', '')}:\n")
        _write_volume_source(w, volume)


def _write_tolerations(w: PrefixWriter, title: str, tolerations: list[Obj] | None) -> None:
    w.write(0, f"{title}:\t")
    if not tolerations:
        w.write(0, f"{NONE}\n")
        return
    for i, toleration in enumerate(sorted(tolerations, key=lambda t: str(t.get("key", "")))):
        if i:
            w.write(0, "\t")
        key, value, effect = (str(toleration.get(k) or "") for k in ("key", "value", "effect"))
        text = key + (f"={value}" if value else "") + (f":{effect}" if effect else "")
        if toleration.get("operator") == "Exists" and not value:
            text += " op=Exists" if key or effect else "op=Exists"
        if toleration.get("tolerationSeconds") is not None:
            text += f" for {toleration['tolerationSeconds']}s"
        w.write(0, text + "\n")


def _write_spread_constraints(
    w: PrefixWriter, constraints: list[Obj] | None, space: str = ""
) -> None:
    if not constraints:
        return
    w.write(0, f"{space}Topology Spread Constraints:\t")
    for i, tsc in enumerate(sorted(constraints, key=lambda c: str(c.get("topologyKey", "")))):
        if i:
            w.write(0, f"{space}\t")
        text = (
            f"{tsc.get('topologyKey', '')}:{tsc.get('whenUnsatisfiable', '')} "
            f"when max skew {tsc.get('maxSkew', 0)} is exceeded"
        )
        if tsc.get("labelSelector") is not None:
            text += f" for selector {_or_none(_label_selector_text(tsc['labelSelector']))}"
        w.write(0, text + "\n")


def _write_pod_template(w: PrefixWriter, template: Obj | None) -> None:
    """``DescribePodTemplate``: the template's labels, containers and volumes, indented."""
    w.write(0, "Pod Template:\n")
    if template is None:
        w.write(1, f"{UNSET}\n")
        return
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    _write_multiline_map(w, "  Labels", meta.get("labels"))
    if meta.get("annotations"):
        _write_annotations(w, "  Annotations", meta["annotations"])
    if spec.get("serviceAccountName"):
        w.write(1, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        _write_containers(w, "Init Containers", spec["initContainers"], None, None, "  ")
    _write_containers(w, "Containers", spec.get("containers") or [], None, None, "  ")
    _write_volumes(w, spec.get("volumes") or [], "  ")
    _write_spread_constraints(w, spec.get("topologySpreadConstraints"), "  ")
    if spec.get("priorityClassName"):
        w.write(1, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    _write_multiline_map(w, "  Node-Selectors", spec.get("nodeSelector"))
    _write_tolerations(w, "  Tolerations", spec.get("tolerations"))


async def describe_pod(src: DescribeSource, pod: Obj) -> str:
    events = await src.events(pod)
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    node = spec.get("nodeName")
    w.write(0, f"Node:\t{node}/{status.get('hostIP', '')}\n" if node else f"Node:\t{NONE}\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{format_time(status['startTime'])}\n")
    _write_multiline_map(w, "Labels", meta.get("labels"))
    _write_annotations(w, "Annotations", meta.get("annotations"))
    phase = status.get("phase", "")
    if meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {src.since(meta['deletionTimestamp'])})\n")
        w.write(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if status.get("reason"):
        w.write(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.write(0, f"Message:\t{status['message']}\n")
    seccomp = (spec.get("securityContext") or {}).get("seccompProfile")
    if seccomp:
        w.write(0, f"SeccompProfile:\t{seccomp.get('type', '')}\n")
        if seccomp.get("type") == "Localhost":
            w.write(0, f"LocalhostProfile:\t{seccomp.get('localhostProfile', '')}\n")
    w.write(0, f"IP:\t{status.get('podIP', '')}\n")
    pod_ips = status.get("podIPs") or []
    if pod_ips:
        w.write(0, "IPs:\n")
        for ip in pod_ips:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w.write(0, f"IPs:\t{NONE}\n")
    if _controlled_by(pod):
        w.write(0, f"Controlled By:\t{_controlled_by(pod)}\n")
    if status.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{status['nominatedNodeName']}\n")
    if spec.get("resources") is not None:
        w.write(0, "Resources:\n")
        _write_resources(w, spec["resources"], 1)
    if spec.get("initContainers"):
        _write_containers(
            w, "Init Containers", spec["initContainers"], status.get("initContainerStatuses"), pod
        )
    _write_containers(
        w, "Containers", spec.get("containers") or [], status.get("containerStatuses"), pod
    )
    if spec.get("ephemeralContainers"):
        _write_containers(
            w,
            "Ephemeral Containers",
            spec["ephemeralContainers"],
            status.get("ephemeralContainerStatuses"),
            pod,
        )
    conditions = status.get("conditions") or []
    if spec.get("readinessGates"):
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        for gate in spec["readinessGates"]:
            found = [c for c in conditions if c.get("type") == gate.get("conditionType")]
            gate_status = found[0].get("status", "") if found else NONE
            w.write(1, f"{gate.get('conditionType', '')} \t{gate_status} \n")
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for condition in conditions:
            w.write(1, f"{condition.get('type', '')} \t{condition.get('status', '')} \n")
    _write_volumes(w, spec.get("volumes") or [])
    w.write(0, f"QoS Class:\t{pod_qos_class(pod)}\n")
    _write_multiline_map(w, "Node-Selectors", spec.get("nodeSelector"))
    _write_tolerations(w, "Tolerations", spec.get("tolerations"))
    _write_spread_constraints(w, spec.get("topologySpreadConstraints"))
    write_events(w, src, events)
    return w.render()


# --- workloads ----------------------------------------------------------------------------------


async def _pod_phase_counts(src: DescribeSource, owner: Obj, selector: str) -> tuple[int, ...]:
    """Running, waiting, succeeded and failed pods that ``owner`` controls."""
    uid = (owner.get("metadata") or {}).get("uid")
    pods = await src.items(
        src.rt("v1", "Pod"), (owner.get("metadata") or {}).get("namespace"), label_selector=selector
    )
    phases = [
        (pod.get("status") or {}).get("phase")
        for pod in pods
        if (ref := _controller_of(pod)) is not None and ref.get("uid") == uid
    ]
    return tuple(phases.count(p) for p in ("Running", "Pending", "Succeeded", "Failed"))


def _pods_status(counts: tuple[int, ...]) -> str:
    running, waiting, succeeded, failed = counts
    return f"{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed"


def _write_workload_conditions(w: PrefixWriter, conditions: list[Obj] | None) -> None:
    if not conditions:
        return
    w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
    w.write(1, "----\t------\t------\n")
    for condition in conditions:
        w.write(
            1,
            f"{condition.get('type', '')} \t{condition.get('status', '')}\t"
            f"{condition.get('reason', '')}\n",
        )


def _replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


async def describe_replication_controller(src: DescribeSource, rc: Obj) -> str:
    spec = rc.get("spec") or {}
    selector = spec.get("selector") or {}
    counts = await _pod_phase_counts(src, rc, str(selector_from_set(selector)))
    events = await src.events(rc)
    meta = rc.get("metadata") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Selector:\t{_format_labels(selector)}\n")
    _write_multiline_map(w, "Labels", meta.get("labels"))
    _write_annotations(w, "Annotations", meta.get("annotations"))
    current = (rc.get("status") or {}).get("replicas", 0)
    w.write(0, f"Replicas:\t{current} current / {_replicas(rc)} desired\n")
    w.write(0, f"Pods Status:\t{_pods_status(counts)}\n")
    _write_pod_template(w, spec.get("template"))
    _write_workload_conditions(w, (rc.get("status") or {}).get("conditions"))
    write_events(w, src, events)
    return w.render()


async def describe_replica_set(src: DescribeSource, rs: Obj) -> str:
    spec = rs.get("spec") or {}
    pods_status: str
    try:
        counts = await _pod_phase_counts(src, rs, str(selector_from_dict(spec.get("selector"))))
        pods_status = _pods_status(counts)
    except (ApiError, SelectorError) as error:
        pods_status = f"error in fetching pods: {error}"
    events = await src.events(rs)
    meta = rs.get("metadata") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Selector:\t{_or_none(_label_selector_text(spec.get('selector')))}\n")
    _write_multiline_map(w, "Labels", meta.get("labels"))
    _write_annotations(w, "Annotations", meta.get("annotations"))
    if _controlled_by(rs):
        w.write(0, f"Controlled By:\t{_controlled_by(rs)}\n")
    current = (rs.get("status") or {}).get("replicas", 0)
    w.write(0, f"Replicas:\t{current} current / {_replicas(rs)} desired\n")
    w.write(0, f"Pods Status:\t{pods_status}\n")
    _write_pod_template(w, spec.get("template"))
    _write_workload_conditions(w, (rs.get("status") or {}).get("conditions"))
    write_events(w, src, events)
    return w.render()


REVISION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH = "pod-template-hash"


def _template_identity(template: Obj | None) -> Obj:
    """A pod template with the label its ReplicaSet adds taken out, for comparison."""
    out = copy.deepcopy(template or {})
    meta = out.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels.pop(TEMPLATE_HASH, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    return out


def split_replica_sets(
    deployment: Obj, replica_sets: Iterable[Obj]
) -> tuple[list[Obj], Obj | None]:
    """The deployment's old ReplicaSets and its new one.

    The new one runs the deployment's current template (oldest such first, as
    the deployment controller picks it); failing that, the one whose revision
    annotation matches the deployment's.
    """
    uid = (deployment.get("metadata") or {}).get("uid")
    owned = [
        rs
        for rs in replica_sets
        if (ref := _controller_of(rs)) is not None and ref.get("uid") == uid
    ]
    want = _template_identity((deployment.get("spec") or {}).get("template"))
    by_age = sorted(
        owned,
        key=lambda rs: (
            parse_time((rs.get("metadata") or {}).get("creationTimestamp"))
            or datetime.min.replace(tzinfo=UTC)
        ),
    )
    new = next(
        (rs for rs in by_age if _template_identity((rs.get("spec") or {}).get("template")) == want),
        None,
    )
    if new is None:
        revision = ((deployment.get("metadata") or {}).get("annotations") or {}).get(REVISION)
        new = next(
            (
                rs
                for rs in owned
                if revision
                and ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION) == revision
            ),
            None,
        )
    return [rs for rs in owned if rs is not new], new


def _replica_sets_text(replica_sets: list[Obj]) -> str:
    return (
        ", ".join(
            f"{(rs.get('metadata') or {}).get('name', '')} "
            f"({(rs.get('status') or {}).get('replicas', 0)}/{_replicas(rs)} replicas created)"
            for rs in replica_sets
        )
        or NONE
    )


async def describe_deployment(src: DescribeSource, deployment: Obj) -> str:
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    events = await src.events(deployment)
    try:
        replica_sets = await src.items(src.rt("apps/v1", "ReplicaSet"), meta.get("namespace"))
    except ApiError:
        replica_sets = []
    old, new = split_replica_sets(deployment, replica_sets)
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"CreationTimestamp:\t{format_time(meta.get('creationTimestamp'))}\n")
    _write_multiline_map(w, "Labels", meta.get("labels"))
    _write_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{_label_selector_text(spec.get('selector'))}\n")
    w.write(
        0,
        f"Replicas:\t{_replicas(deployment)} desired | "
        f"{status.get('updatedReplicas', 0)} updated | {status.get('replicas', 0)} total | "
        f"{status.get('availableReplicas', 0)} available | "
        f"{status.get('unavailableReplicas', 0)} unavailable\n",
    )
    strategy = spec.get("strategy") or {}
    w.write(0, f"StrategyType:\t{strategy.get('type', '')}\n")
    w.write(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        w.write(
            0,
            f"RollingUpdateStrategy:\t{_int_or_string(rolling.get('maxUnavailable'))} "
            f"max unavailable, {_int_or_string(rolling.get('maxSurge'))} max surge\n",
        )
    _write_pod_template(w, spec.get("template"))
    _write_workload_conditions(w, status.get("conditions"))
    if old or new is not None:
        w.write(0, f"OldReplicaSets:\t{_replica_sets_text(old)}\n")
        w.write(0, f"NewReplicaSet:\t{_replica_sets_text([new] if new is not None else [])}\n")
    write_events(w, src, events)
    return w.render()


# --- services and endpoints ---------------------------------------------------------------------


def format_endpoints(endpoints: Obj | None, port_name: str | None) -> str:
    """``formatEndpoints``: up to three ready ``ip:port`` for the named port, then a count."""
    subsets = (endpoints or {}).get("subsets") or []
    if not subsets:
        return NONE
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            targets = addresses
        else:
            targets = [
                f"[{ip}]:{p.get('port', 0)}" if ":" in ip else f"{ip}:{p.get('port', 0)}"
                for p in ports
                if port_name is None or (p.get("name") or "") == port_name
                for ip in addresses
            ]
        for target in targets:
            if len(shown) < 3:
                shown.append(target)
            count += 1
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


def _load_balancer_ingress(ingress: list[Obj]) -> str:
    parts = []
    for entry in ingress:
        if entry.get("ip"):
            mode = f" ({entry['ipMode']})" if entry.get("ipMode") else ""
            parts.append(entry["ip"] + mode)
        else:
            parts.append(entry.get("hostname", ""))
    return ", ".join(parts)


async def describe_service(src: DescribeSource, service: Obj) -> str:
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    endpoints = await src.get_or_none(
        src.rt("v1", "Endpoints"), meta.get("name", ""), meta.get("namespace")
    )
    events = await src.events(service)
    w = PrefixWriter()
    _write_meta_header(w, service)
    w.write(0, f"Selector:\t{_format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec.get('type', '')}\n")
    if spec.get("ipFamilyPolicy") is not None:
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{_or_none(','.join(spec.get('ipFamilies') or []))}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{_or_none(','.join(spec.get('clusterIPs') or []))}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        w.write(0, f"LoadBalancer Ingress:\t{_load_balancer_ingress(ingress)}\n")
    for port in spec.get("ports") or []:
        name = port.get("name") or UNSET
        protocol = port.get("protocol") or "TCP"
        target = port.get("targetPort", port.get("port", 0))
        w.write(0, f"Port:\t{name}\t{port.get('port', 0)}/{protocol}\n")
        w.write(0, f"TargetPort:\t{target}/{protocol}\n")
        if port.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{port['nodePort']}/{protocol}\n")
        w.write(0, f"Endpoints:\t{format_endpoints(endpoints, port.get('name') or '')}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', '')}\n")
    for title, value in (
        ("External Traffic Policy", spec.get("externalTrafficPolicy")),
        ("Internal Traffic Policy", spec.get("internalTrafficPolicy")),
        ("HealthCheck NodePort", spec.get("healthCheckNodePort")),
    ):
        if value:
            w.write(0, f"{title}:\t{value}\n")
    if spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    if spec.get("trafficDistribution"):
        w.write(0, f"Traffic Distribution:\t{spec['trafficDistribution']}\n")
    write_events(w, src, events)
    return w.render()


def _ips(addresses: list[Obj] | None) -> str:
    return _or_none(",".join(a.get("ip", "") for a in addresses or []))


async def describe_endpoints(src: DescribeSource, endpoints: Obj) -> str:
    events = await src.events(endpoints)
    w = PrefixWriter()
    _write_meta_header(w, endpoints)
    w.write(0, "Subsets:\n")
    for subset in endpoints.get("subsets") or []:
        w.write(1, f"Addresses:\t{_ips(subset.get('addresses'))}\n")
        w.write(1, f"NotReadyAddresses:\t{_ips(subset.get('notReadyAddresses'))}\n")
        ports = subset.get("ports") or []
        if ports:
            w.write(1, "Ports:\n")
            w.write(2, "Name\tPort\tProtocol\n")
            w.write(2, "----\t----\t--------\n")
            for port in ports:
                w.write(
                    2,
                    f"{port.get('name') or UNSET}\t{port.get('port', 0)}\t"
                    f"{port.get('protocol') or 'TCP'}\n",
                )
        w.write(0, "\n")
    write_events(w, src, events)
    return w.render()


# --- nodes --------------------------------------------------------------------------------------


def node_roles(node: Obj) -> list[str]:
    roles = set()
    for key, value in ((node.get("metadata") or {}).get("labels") or {}).items():
        if key.startswith(NODE_ROLE_PREFIX) and key[len(NODE_ROLE_PREFIX) :]:
            roles.add(key[len(NODE_ROLE_PREFIX) :])
        elif key == NODE_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def _taint_text(taint: Obj) -> str:
    key, value, effect = (taint.get(k) or "" for k in ("key", "value", "effect"))
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def _write_taints(w: PrefixWriter, taints: list[Obj] | None) -> None:
    w.write(0, "Taints:\t")
    if not taints:
        w.write(0, f"{NONE}\n")
        return
    ordered = sorted(taints, key=lambda t: f"{t.get('effect', '')},{t.get('key', '')}")
    for i, taint in enumerate(ordered):
        if i:
            w.write(0, "\t")
        w.write(0, _taint_text(taint) + "\n")


def _write_node_lease(w: PrefixWriter, lease: Obj | None, error: str) -> None:
    if lease is None:
        w.write(0, f"Lease:\tFailed to get lease: {error}\n")
        return
    spec = lease.get("spec") or {}
    w.write(0, "Lease:\n")
    w.write(1, f"HolderIdentity:\t{spec.get('holderIdentity') or UNSET}\n")
    for title, key in (("AcquireTime", "acquireTime"), ("RenewTime", "renewTime")):
        value = format_time(spec[key]) if spec.get(key) else UNSET
        w.write(1, f"{title}:\t{value}\n")


def _write_node_resources(w: PrefixWriter, src: DescribeSource, node: Obj, pods: list[Obj]) -> None:
    """``describeNodeResource``: each pod's cpu and memory, then the node's totals."""
    status = node.get("status") or {}
    allocatable = _resource_list(status.get("allocatable") or status.get("capacity"))
    cpu_total = allocatable.get("cpu", ZERO)
    memory_total = allocatable.get("memory", ZERO)
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n")
    requests: dict[str, _Qty] = {}
    limits: dict[str, _Qty] = {}
    for pod in pods:
        pod_requests = _pod_totals(pod, "requests")
        pod_limits = _pod_totals(pod, "limits")
        _add_resources(requests, pod_requests)
        _add_resources(limits, pod_limits)
        cells = [
            _with_percent(pod_requests.get("cpu", ZERO), cpu_total, milli=True),
            _with_percent(pod_limits.get("cpu", ZERO), cpu_total, milli=True),
            _with_percent(pod_requests.get("memory", ZERO), memory_total, milli=False),
            _with_percent(pod_limits.get("memory", ZERO), memory_total, milli=False),
        ]
        meta = pod.get("metadata") or {}
        w.write(
            1,
            f"{meta.get('namespace', '')}\t{meta.get('name', '')}\t\t"
            + "\t".join(cells)
            + f"\t{src.since(meta.get('creationTimestamp'))}\n",
        )
    w.write(
        0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n"
    )
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")
    for name, milli in (("cpu", True), ("memory", False), ("ephemeral-storage", False)):
        whole = allocatable.get(name, ZERO)
        w.write(
            1,
            f"{name}\t{_with_percent(requests.get(name, ZERO), whole, milli)}\t"
            f"{_with_percent(limits.get(name, ZERO), whole, milli)}\n",
        )
    names = sorted(allocatable)
    for name in (n for n in names if n.startswith("hugepages-")):
        whole = allocatable[name]
        w.write(
            1,
            f"{name}\t{_with_percent(requests.get(name, ZERO), whole, False)}\t"
            f"{_with_percent(limits.get(name, ZERO), whole, False)}\n",
        )
    standard = {"cpu", "memory", "ephemeral-storage", "pods"}
    for name in (n for n in names if n not in standard and not n.startswith("hugepages-")):
        w.write(1, f"{name}\t{requests.get(name, ZERO)}\t{limits.get(name, ZERO)}\n")


def _with_percent(part: _Qty, whole: _Qty, milli: bool) -> str:
    return f"{part} ({_percent(part, whole, milli)}%)"


async def describe_node(src: DescribeSource, node: Obj) -> str:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    name = meta.get("name", "")
    pods: list[Obj] | None
    try:
        pods = [
            pod
            for pod in await src.items(
                src.rt("v1", "Pod"),
                None,
                field_selector=f"spec.nodeName={escape_field_value(name)},"
                "status.phase!=Succeeded,status.phase!=Failed",
            )
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
    except ApiError as error:
        if error.code != 403:
            raise
        pods = None
    events = await src.events(node)
    if events is not None:
        # The kubelet names a node by its name where controllers use its uid.
        seen = {(e.get("metadata") or {}).get("uid") for e in events}
        events += [
            e
            for e in await src.events(node, uid=name) or []
            if (e.get("metadata") or {}).get("uid") not in seen
        ]
    lease_error = ""
    try:
        lease = await src.client.get(
            src.rt("coordination.k8s.io/v1", "Lease"), name, NODE_LEASE_NAMESPACE
        )
    except ApiError as error:
        lease, lease_error = None, error.message
    w = PrefixWriter()
    w.write(0, f"Name:\t{name}\n")
    w.write(0, f"Roles:\t{_or_none(','.join(node_roles(node)))}\n")
    _write_multiline_map(w, "Labels", meta.get("labels"))
    _write_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{format_time(meta.get('creationTimestamp'))}\n")
    _write_taints(w, spec.get("taints"))
    w.write(0, f"Unschedulable:\t{_go_bool(spec.get('unschedulable'))}\n")
    _write_node_lease(w, lease, lease_error)
    conditions = status.get("conditions") or []
    if conditions:
        w.write(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        )
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(
                1,
                f"{c.get('type', '')} \t{c.get('status', '')} \t"
                f"{format_time(c.get('lastHeartbeatTime'))} \t"
                f"{format_time(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                f"{c.get('message', '')}\n",
            )
    w.write(0, "Addresses:\n")
    for address in status.get("addresses") or []:
        w.write(1, f"{address.get('type', '')}:\t{address.get('address', '')}\n")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        values = status.get(key) or {}
        if values:
            w.write(0, f"{title}:\n")
            for resource in sorted(values):
                w.write(0, f"  {resource}:\t{_quantity_text(values[resource])}\n")
    info = status.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for title, key in (
        ("Machine ID", "machineID"),
        ("System UUID", "systemUUID"),
        ("Boot ID", "bootID"),
        ("Kernel Version", "kernelVersion"),
        ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"),
        ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"),
        ("Kubelet Version", "kubeletVersion"),
        ("Kube-Proxy Version", "kubeProxyVersion"),
    ):
        w.write(0, f"  {title}:\t{info.get(key, '')}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    if spec.get("providerID"):
        w.write(0, f"ProviderID:\t{spec['providerID']}\n")
    if pods is None:
        w.write(0, "Pods:\tnot authorized\n")
    else:
        _write_node_resources(w, src, node, pods)
    write_events(w, src, events)
    return w.render()


# --- the rest -----------------------------------------------------------------------------------


async def describe_namespace(src: DescribeSource, namespace: Obj) -> str:
    status = namespace.get("status") or {}
    w = PrefixWriter()
    _write_meta_header(w, namespace, namespaced=False)
    w.write(0, f"Status:\t{status.get('phase', '')}\n")
    conditions = status.get("conditions") or []
    if conditions:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(
                1,
                f"{c.get('type', '')}\t{c.get('status', '')}\t"
                f"{format_time(c.get('lastTransitionTime'))}\t{c.get('reason', '')}\t"
                f"{c.get('message', '')}\n",
            )
    return w.render()


def _decoded_size(encoded: Any) -> int:
    try:
        return len(base64.b64decode(str(encoded), validate=True))
    except (binascii.Error, ValueError):
        return len(str(encoded))


async def describe_secret(src: DescribeSource, secret: Obj) -> str:
    """Only sizes: a secret's values never reach the terminal."""
    w = PrefixWriter()
    _write_meta_header(w, secret)
    w.write(0, f"\nType:\t{secret.get('type', '')}\n")
    w.write(0, "\nData\n====\n")
    for key, value in sorted((secret.get("data") or {}).items()):
        w.write(0, f"{key}:\t{_decoded_size(value)} bytes\n")
    return w.render()


async def describe_config_map(src: DescribeSource, config_map: Obj) -> str:
    events = await src.events(config_map)
    w = PrefixWriter()
    _write_meta_header(w, config_map)
    w.write(0, "\nData\n====\n")
    for key, value in sorted((config_map.get("data") or {}).items()):
        w.write(0, f"{key}:\n----\n")
        w.write(0, f"{value}\n")
        w.write(0, "\n")
    w.write(0, "\nBinaryData\n====\n")
    for key, value in sorted((config_map.get("binaryData") or {}).items()):
        w.write(0, f"{key}: {_decoded_size(value)} bytes\n")
    w.write(0, "\n")
    write_events(w, src, events)
    return w.render()


async def describe_pod_disruption_budget(src: DescribeSource, pdb: Obj) -> str:
    events = await src.events(pdb)
    meta = pdb.get("metadata") or {}
    spec = pdb.get("spec") or {}
    status = pdb.get("status") or {}
    w = PrefixWriter()
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    if spec.get("minAvailable") is not None:
        w.write(0, f"Min available:\t{spec['minAvailable']}\n")
    elif spec.get("maxUnavailable") is not None:
        w.write(0, f"Max unavailable:\t{spec['maxUnavailable']}\n")
    if spec.get("selector") is not None:
        w.write(0, f"Selector:\t{_or_none(_label_selector_text(spec['selector']))}\n")
    else:
        w.write(0, f"Selector:\t{UNSET}\n")
    w.write(0, "Status:\n")
    for title, key in (
        ("Allowed disruptions", "disruptionsAllowed"),
        ("Current", "currentHealthy"),
        ("Desired", "desiredHealthy"),
        ("Total", "expectedPods"),
    ):
        w.write(2, f"{title}:\t{status.get(key, 0)}\n")
    write_events(w, src, events)
    return w.render()


def smart_label(field_name: str) -> str:
    """``smartLabelFor``: ``holderIdentity`` as ``Holder Identity``, ``apiVersion`` as
    ``API Version``; a name with anything but letters and ``-`` is left alone."""
    if any(not (c.isalpha() or c == "-") for c in field_name):
        return field_name
    runs: list[str] = []
    last = ""
    for char in field_name:
        kind = "lower" if char.islower() else "upper" if char.isupper() else "other"
        if runs and kind == last:
            runs[-1] += char
        else:
            runs.append(char)
        last = kind
    for i in range(len(runs) - 1):
        if runs[i][:1].isupper() and runs[i + 1][:1].islower():
            runs[i + 1] = runs[i][-1] + runs[i + 1]
            runs[i] = runs[i][:-1]
    parts = []
    for part in (r for r in runs if r and r != "_"):
        upper = part.upper()
        parts.append(
            upper if upper in ("API", "URL", "UID", "OSB", "GUID") else part[:1].upper() + part[1:]
        )
    return " ".join(parts)


GENERIC_SKIP = (
    ".metadata.managedFields",
    ".metadata.name",
    ".metadata.namespace",
    ".metadata.labels",
    ".metadata.annotations",
)


def _write_unstructured(w: PrefixWriter, level: int, content: Mapping[str, Any], path: str) -> None:
    """``printUnstructuredContent``: fields sorted, maps and lists nested one level deeper."""
    for name in sorted(content):
        value = content[name]
        here = f"{path}.{name}"
        if here in GENERIC_SKIP:
            continue
        if isinstance(value, dict):
            w.write(level, f"{smart_label(name)}:\n")
            _write_unstructured(w, level + 1, value, here)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(name)}:\n")
            for child in value:
                if isinstance(child, dict):
                    _write_unstructured(w, level + 1, child, here)
                else:
                    w.write(level + 1, f"{_go_value(child)}\n")
        else:
            w.write(level, f"{smart_label(name)}:\t{_go_value(value)}\n")


async def describe_generic(src: DescribeSource, obj: Obj) -> str:
    """kubectl's generic describer, for kinds without one of their own."""
    events = await src.events(obj)
    w = PrefixWriter()
    _write_meta_header(w, obj)
    _write_unstructured(w, 0, obj, "")
    write_events(w, src, events)
    return w.render()


DESCRIBERS: dict[str, Describer] = {
    "Pod": describe_pod,
    "ReplicationController": describe_replication_controller,
    "ReplicaSet": describe_replica_set,
    "Deployment": describe_deployment,
    "Service": describe_service,
    "Endpoints": describe_endpoints,
    "Node": describe_node,
    "Namespace": describe_namespace,
    "Secret": describe_secret,
    "ConfigMap": describe_config_map,
    "PodDisruptionBudget": describe_pod_disruption_budget,
}


async def describe_object(src: DescribeSource, obj: Obj) -> str:
    """The description of one object, by its kind; unknown kinds get the generic layout."""
    return await DESCRIBERS.get(str(obj.get("kind") or ""), describe_generic)(src, obj)


# --- the command --------------------------------------------------------------------------------


def parse_go_bool(text: str) -> bool:
    """A boolean flag value as Go's ``strconv.ParseBool`` reads it."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise argparse.ArgumentTypeError(f'invalid boolean value "{text}"')


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "describe",
        parents=[common],
        help="show details of a specific resource or group of resources",
    )
    p.add_argument("resources", nargs="*", help="TYPE [NAME_PREFIX...] or TYPE/NAME...")
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        help="file, directory or - naming the objects to describe",
    )
    p.add_argument("-R", "--recursive", action="store_true", help="walk directories given to -f")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument(
        "--show-events",
        type=parse_go_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="display events related to the object (default true)",
    )
    p.set_defaults(func=run)


class _Printer:
    """Writes descriptions with kubectl's separator and keeps its errors for the end."""

    def __init__(self, ctx: CliContext) -> None:
        self.ctx = ctx
        self.count = 0
        self.errors: list[str] = []

    def emit(self, text: str) -> None:
        self.ctx.out.write(text if self.count == 0 else "\n\n" + text)
        self.ctx.out.flush()
        self.count += 1

    def error(self, error: ApiError) -> None:
        line = f"Error from server ({error.reason}): {error.message}"
        if line not in self.errors:
            self.errors.append(line)


def _typed(rt: ResourceType, obj: Obj) -> Obj:
    # Items of a list carry no type of their own.
    obj.setdefault("apiVersion", rt.api_version)
    obj.setdefault("kind", rt.kind)
    return obj


async def _describe_by_prefix(
    ctx: CliContext, src: DescribeSource, rt: ResourceType, prefix: str
) -> bool:
    """kubectl's fallback for ``describe TYPE NAME``: every object whose name starts so."""
    matched = [
        _typed(rt, obj)
        for obj in await src.items(rt, ctx.namespace if rt.namespaced else None)
        if str((obj.get("metadata") or {}).get("name", "")).startswith(prefix)
    ]
    for obj in matched:
        ctx.out.write(await describe_object(src, obj) + "\n")
    ctx.out.flush()
    return bool(matched)


async def _describe_named(
    ctx: CliContext,
    src: DescribeSource,
    printer: _Printer,
    rt: ResourceType,
    name: str,
    namespace: str,
    prefix_fallback: bool,
) -> None:
    try:
        obj = _typed(rt, await src.client.get(rt, name, namespace))
    except ApiError as error:
        if error.code == 404 and prefix_fallback and await _describe_by_prefix(ctx, src, rt, name):
            return
        printer.error(error)
        return
    try:
        printer.emit(await describe_object(src, obj))
    except ApiError as error:
        printer.error(error)


async def run(ctx: CliContext, args: argparse.Namespace) -> int:
    src = DescribeSource(
        ctx.client, ctx.registry, show_events=args.show_events, now=ctx.clock.now()
    )
    printer = _Printer(ctx)
    if args.filename:
        for manifest in manifests.load(args.filename, recursive=args.recursive):
            obj = manifest.obj
            rt = ctx.resolve_kind(obj["apiVersion"], obj["kind"], manifest.source)
            meta = obj.get("metadata") or {}
            await _describe_named(
                ctx,
                src,
                printer,
                rt,
                meta.get("name", ""),
                meta.get("namespace") or ctx.namespace,
                False,
            )
    else:
        if not args.resources:
            raise UsageError(
                "You must specify the type of resource to describe. Use "
                '"corral api-resources" for a complete list of supported resources.'
            )
        targets = ctx.targets(args.resources)
        prefix_fallback = len(args.resources) == 2 and "/" not in args.resources[0]
        for rt, names in targets:
            if names and ctx.all_namespaces:
                raise UsageError("a resource cannot be retrieved by name across all namespaces")
            for name in names:
                await _describe_named(ctx, src, printer, rt, name, ctx.namespace, prefix_fallback)
            if names:
                continue
            try:
                listed = await ctx.client.list(
                    rt,
                    ctx.namespace,
                    all_namespaces=ctx.all_namespaces,
                    label_selector=args.selector,
                )
            except ApiError as error:
                printer.error(error)
                continue
            for obj in listed.get("items") or []:
                try:
                    printer.emit(await describe_object(src, _typed(rt, obj)))
                except ApiError as error:
                    printer.error(error)
        named = any(names for _, names in targets)
        if not named and printer.count == 0 and not printer.errors:
            where = "" if ctx.all_namespaces else f" in {ctx.namespace} namespace."
            ctx.err.write(f"No resources found{where}\n")
    for line in printer.errors:
        ctx.err.write(line + "\n")
    ctx.err.flush()
    return 1 if printer.errors else 0


# Describers that live in modules of their own register themselves when imported.
import corralctl.describe_storage  # noqa: E402, F401
