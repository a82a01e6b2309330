"""How describe writes values: times, booleans, labels, annotations, quantities, Go's ``%v``.

``parse_time``, ``human_duration`` and the QoS class live here together:
they are the helpers corral's shared vocabulary of objects takes over, and
every other module of the package imports them from here, so that move is
an edit of this one module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from corral.api.labels import SelectorError, selector_from_dict
from corral.api.quantity import QuantityError, canonicalize_quantity
from corralctl.describe.quantities import Qty, add_resources, resource_list
from corralctl.describe.tabwriter import PrefixWriter

Obj = dict[str, Any]


NONE = "<none>"


UNSET = "<unset>"


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


MAX_ANNOTATION_LEN = 140


ZERO_TIME = "Mon, 01 Jan 0001 00:00:00 +0000"


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


def pod_qos_class(pod: Obj) -> str:
    """The pod's QoS class: ``status.qosClass``, else computed as the kubelet does."""
    if (pod.get("status") or {}).get("qosClass"):
        return str(pod["status"]["qosClass"])
    spec = pod.get("spec") or {}
    requests: dict[str, Qty] = {}
    limits: dict[str, Qty] = {}
    guaranteed = True
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = container.get("resources") or {}
        own_requests = {
            k: v
            for k, v in resource_list(resources.get("requests")).items()
            if k in ("cpu", "memory") and v.value > 0
        }
        own_limits = {
            k: v
            for k, v in resource_list(resources.get("limits")).items()
            if k in ("cpu", "memory") and v.value > 0
        }
        add_resources(requests, own_requests)
        add_resources(limits, own_limits)
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


def go_bool(value: Any) -> str:
    return "true" if value else "false"


def title_bool(value: Any) -> str:
    return "True" if value else "False"


def or_none(text: str) -> str:
    return text or NONE


def format_labels(labels: Mapping[str, str] | None) -> str:
    """``labels.FormatLabels``: ``a=1,b=2`` sorted by key, or ``<none>``."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or NONE


def label_selector_text(selector: Mapping[str, Any] | None) -> str:
    """``metav1.LabelSelectorAsSelector(...).String()``; ``<error>`` if it does not parse."""
    try:
        return str(selector_from_dict(selector))
    except SelectorError:
        return "<error>"


def controller_of(obj: Obj) -> Obj | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controlled_by(obj: Obj) -> str:
    ref = controller_of(obj)
    return f"{ref.get('kind', '')}/{ref.get('name', '')}" if ref else ""


def quantity_text(value: Any) -> str:
    try:
        return canonicalize_quantity(value)
    except (QuantityError, TypeError):
        return str(value)


def int_or_string(value: Any) -> str:
    return "<nil>" if value is None else str(value)


def go_value(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return go_bool(value)
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def go_quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_multiline_map(
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


def write_annotations(w: PrefixWriter, title: str, annotations: Mapping[str, str] | None) -> None:
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


def write_meta_header(w: PrefixWriter, obj: Obj, *, namespaced: bool = True) -> None:
    meta = obj.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    if namespaced:
        w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    write_multiline_map(w, "Labels", meta.get("labels"))
    write_annotations(w, "Annotations", meta.get("annotations"))
