"""Defaults filled in as objects are read back from etcd.

Kubernetes defaults an object each time it decodes it from storage, so a
field a later release always serializes appears on objects written before
it. Corral serves stored JSON as it is; this fills the few such fields on
read (cheaply: a key test, then a dictionary lookup), and the next write
stores them.
"""

from __future__ import annotations

from corral.objects import Obj

_SERVICES = b"/services/"


def fill_read_defaults(key: bytes, obj: Obj) -> None:
    """Fill, in place, what ``obj`` (stored at ``key``) lacks that Kubernetes always shows."""
    if _SERVICES in key and obj.get("kind") == "Service" and obj.get("apiVersion") == "v1":
        # Services written before status.loadBalancer was always set.
        status = obj.get("status")
        if not isinstance(status, dict):
            status = obj["status"] = {}
        if not isinstance(status.get("loadBalancer"), dict):
            status["loadBalancer"] = {}
