"""The storage size limit, against a real etcd: the bytes checked are the bytes written.

A write encodes the object once, checks the size of that encoding, and hands
the same bytes to etcd; these tests read etcd back to see that what is stored
is the object served, and that an object over the limit leaves nothing written.
"""

from __future__ import annotations

import os

import orjson
import pytest

from controlplane.apiserver.objects import Objects
from controlplane.storage.etcd import EtcdClient
from controlplane.storage.store import Store
from controlplane.storage.watchcache import WatchCache
from corral.api.errors import ApiError
from corral.api.resources import REGISTRY
from corral.clock import SystemClock
from tests.conftest import LocalCluster

CLUSTER_ROLES = REGISTRY.by_kind("rbac.authorization.k8s.io/v1", "ClusterRole")
LIMIT = 2_000


def _role(name: str, verbs: int) -> dict[str, object]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": [f"v{n}" for n in range(verbs)]}
        ],
    }


async def test_a_write_stores_the_bytes_it_checked_and_refuses_more(cluster: LocalCluster) -> None:
    assert cluster.etcd is not None and CLUSTER_ROLES is not None
    etcd = EtcdClient([cluster.etcd.endpoint])
    # A prefix of its own: nothing else reads or writes these keys.
    store = Store(etcd, prefix=f"/size-limit-{os.getpid()}-{os.urandom(3).hex()}")
    objects = Objects(store, WatchCache(etcd), REGISTRY, SystemClock(), max_object_bytes=LIMIT)
    try:
        created = await objects.create(CLUSTER_ROLES, None, _role("small", 3))
        key = objects.key(CLUSTER_ROLES, None, "small")
        kv, _ = await etcd.get(key)
        assert kv is not None
        stored = orjson.loads(kv.value)
        served = dict(created.obj)
        served["metadata"] = {k: v for k, v in served["metadata"].items() if k != "resourceVersion"}
        assert stored == served
        assert len(kv.value) <= LIMIT

        with pytest.raises(ApiError) as refused:
            await objects.create(CLUSTER_ROLES, None, _role("big", 400))
        assert (refused.value.code, refused.value.reason) == (413, "RequestEntityTooLarge")
        assert (await etcd.get(objects.key(CLUSTER_ROLES, None, "big")))[0] is None

        with pytest.raises(ApiError) as refused:
            await objects.update(CLUSTER_ROLES, None, "small", _role("small", 400))
        assert refused.value.code == 413
        after, _ = await etcd.get(key)
        assert after is not None and after.value == kv.value

        grown = await objects.update(CLUSTER_ROLES, None, "small", _role("small", 5))
        kv, _ = await etcd.get(key)
        assert kv is not None
        assert orjson.loads(kv.value)["rules"] == grown.obj["rules"]
        assert len(orjson.loads(kv.value)["rules"][0]["verbs"]) == 5
    finally:
        await etcd.close()
