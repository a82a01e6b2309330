"""How describe writes values: times, booleans, labels, annotations, quantities, Go's ``%v``.

Reading times, printing durations and the QoS rule are corral's shared ones
(corral.objects, corral.durations, corral.qos), so describe and the server agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from corral.api.labels import SelectorError, selector_from_dict
from corral.api.quantity import QuantityError, canonicalize_quantity
from corral.objects import Obj, owner_references, parse_time, spec, status
from corral.qos import qos_class
from corralctl.describe.tabwriter import PrefixWriter

NONE = "<none>"
UNSET = "<unset>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION_LEN = 140
# How Go prints a zero time.Time in RFC1123Z: kubectl shows it for unset timestamps.
ZERO_TIME = "Mon, 01 Jan 0001 00:00:00 +0000"


def format_time(value: Any) -> str:
    """RFC 1123 with a numeric zone, in local time, as kubectl prints timestamps."""
    parsed = parse_time(value)
    if parsed is None:
        return ZERO_TIME
    return parsed.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def pod_qos_class(pod: Obj) -> str:
    """The pod's QoS class: ``status.qosClass``, else computed as the server would have."""
    stored = status(pod).get("qosClass")
    return str(stored) if stored else qos_class(spec(pod))


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
    for ref in owner_references(obj):
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
