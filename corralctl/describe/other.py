"""Kinds with short layouts of their own: Namespace, Secret, ConfigMap, PodDisruptionBudget."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from corral.objects import Obj
from corralctl.describe.events import write_events
from corralctl.describe.formatting import (
    UNSET,
    format_time,
    label_selector_text,
    or_none,
    write_meta_header,
)
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter


async def describe_namespace(src: DescribeSource, namespace: Obj) -> str:
    status = namespace.get("status") or {}
    w = PrefixWriter()
    write_meta_header(w, namespace, namespaced=False)
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
    write_meta_header(w, secret)
    w.write(0, f"\nType:\t{secret.get('type', '')}\n")
    w.write(0, "\nData\n====\n")
    for key, value in sorted((secret.get("data") or {}).items()):
        w.write(0, f"{key}:\t{_decoded_size(value)} bytes\n")
    return w.render()


async def describe_config_map(src: DescribeSource, config_map: Obj) -> str:
    events = await src.events(config_map)
    w = PrefixWriter()
    write_meta_header(w, config_map)
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
        w.write(0, f"Selector:\t{or_none(label_selector_text(spec['selector']))}\n")
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
