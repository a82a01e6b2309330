"""etcd_request_duration_seconds: the store's etcd calls, by operation and object type.

The type is the resource segment of the key (``/registry/pods/ns/name``:
``pods``), so its values are bounded by the kinds the server stores.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import Histogram

# kube-apiserver's buckets for etcd latency (seconds).
BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0,
    6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
)  # fmt: skip

ETCD_DURATION = Histogram(
    "etcd_request_duration_seconds",
    "Etcd request latency in seconds for each operation and object type.",
    ["operation", "type"],
    buckets=BUCKETS,
)


def object_type(prefix: str, key: bytes) -> str:
    """The resource segment of a key under ``prefix`` ("" for anything else)."""
    head = prefix.rstrip("/").encode() + b"/"
    if not key.startswith(head):
        return ""
    return key[len(head) :].split(b"/", 1)[0].decode("utf-8", "replace")


@contextlib.contextmanager
def timed(operation: str, prefix: str, key: bytes) -> Iterator[None]:
    """Observe the block's duration, whether it returns or raises."""
    started = time.perf_counter()
    try:
        yield
    finally:
        ETCD_DURATION.labels(operation, object_type(prefix, key)).observe(
            time.perf_counter() - started
        )
