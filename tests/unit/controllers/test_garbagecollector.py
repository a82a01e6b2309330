"""The garbage collector's decisions, and its handling of owners missing from the cache."""

from __future__ import annotations

from typing import Any

from controlplane.controllers.garbagecollector import (
    GarbageCollector,
    Owner,
    deletion_policy,
    owner_fix_patch,
)
from corral.objects import Obj
from tests.unit.controllers.fakes import context, fill, queued, rt


def obj(finalizers: list[str] | None = None) -> Obj:
    metadata: Obj = {"name": "child", "namespace": "ns", "uid": "child-uid"}
    if finalizers:
        metadata["finalizers"] = finalizers
    return {"metadata": metadata}


def test_any_solid_owner_keeps_the_dependent() -> None:
    owners = {"a": Owner.SOLID, "b": Owner.DANGLING}
    assert deletion_policy(obj(), owners, has_dependents=False) is None


def test_dependent_with_only_dangling_owners_is_deleted_in_the_background() -> None:
    assert deletion_policy(obj(), {"a": Owner.DANGLING}, has_dependents=True) == "Background"


def test_the_dependents_own_finalizers_choose_the_policy() -> None:
    owners = {"a": Owner.DANGLING}
    assert deletion_policy(obj(["orphan"]), owners, has_dependents=True) == "Orphan"
    assert deletion_policy(obj(["foregroundDeletion"]), owners, False) == "Foreground"


def test_foreground_cascades_down_through_dependents_that_have_dependents() -> None:
    owners = {"a": Owner.WAITING}
    assert deletion_policy(obj(), owners, has_dependents=True) == "Foreground"
    assert deletion_policy(obj(), owners, has_dependents=False) == "Background"


def test_a_kept_dependent_drops_dangling_references_and_unblocks_waiting_owners() -> None:
    patch = owner_fix_patch(obj(), {"a": Owner.SOLID, "b": Owner.DANGLING, "c": Owner.WAITING})
    assert patch == {
        "metadata": {
            "ownerReferences": [
                {"$patch": "delete", "uid": "b"},
                {"uid": "c", "blockOwnerDeletion": False},
            ],
            "uid": "child-uid",
        }
    }
    assert owner_fix_patch(obj(), {"a": Owner.SOLID}) is None


def _rc(uid: str, **metadata: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": uid, **metadata}}


def _pod(owner_uid: str) -> Obj:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "pod-uid",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ReplicationController",
                    "name": "web",
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
    }


async def test_an_owner_missing_from_the_cache_is_looked_up_before_anything_is_deleted() -> None:
    ctx, fake = context()
    gc = GarbageCollector(ctx, [rt("Pod"), rt("ReplicationController")])
    fill(ctx, rt("Pod"), _pod("rc-uid"))
    # The cache has not seen the RC yet, but the API has it: nothing is deleted.
    fake.objects[("replicationcontrollers", "ns/web")] = _rc("rc-uid")
    await gc.sync("pods|ns/p")
    assert fake.calls == []
    # Once the API says it is gone, the pod is read fresh and deleted with its UID.
    del fake.objects[("replicationcontrollers", "ns/web")]
    fake.objects[("pods", "ns/p")] = _pod("rc-uid")
    await gc.sync("pods|ns/p")
    ((method, path, body),) = fake.calls
    assert (method, path) == ("DELETE", "/api/v1/namespaces/ns/pods/p")
    assert body["propagationPolicy"] == "Background"
    assert body["preconditions"] == {"uid": "pod-uid"}


async def test_a_replaced_owner_of_the_same_name_does_not_count() -> None:
    ctx, fake = context()
    gc = GarbageCollector(ctx, [rt("Pod"), rt("ReplicationController")])
    fill(ctx, rt("ReplicationController"), _rc("new-uid"))
    fill(ctx, rt("Pod"), _pod("old-uid"))
    fake.objects[("replicationcontrollers", "ns/web")] = _rc("new-uid")
    fake.objects[("pods", "ns/p")] = _pod("old-uid")
    await gc.sync("pods|ns/p")
    assert [c[0] for c in fake.calls] == ["DELETE"]


async def test_orphaning_strips_references_then_the_finalizer() -> None:
    ctx, fake = context()
    gc = GarbageCollector(ctx, [rt("Pod"), rt("ReplicationController")])
    fill(
        ctx,
        rt("ReplicationController"),
        _rc("rc-uid", deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["orphan"]),
    )
    fill(ctx, rt("Pod"), _pod("rc-uid"))
    await gc.sync("replicationcontrollers|ns/web")
    (pod_patch, owner_patch) = fake.calls
    assert pod_patch[1] == "pods/p"
    assert pod_patch[2]["patch"]["metadata"]["ownerReferences"] == [
        {"$patch": "delete", "uid": "rc-uid"}
    ]
    assert owner_patch[1] == "replicationcontrollers/web"
    assert owner_patch[2]["patch"]["metadata"]["$deleteFromPrimitiveList/finalizers"] == ["orphan"]


async def test_foreground_owner_waits_for_blocking_dependents() -> None:
    ctx, fake = context()
    gc = GarbageCollector(ctx, [rt("Pod"), rt("ReplicationController")])
    owner = _rc(
        "rc-uid", deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["foregroundDeletion"]
    )
    fill(ctx, rt("ReplicationController"), owner)
    fill(ctx, rt("Pod"), _pod("rc-uid"))
    await queued(gc)
    await gc.sync("replicationcontrollers|ns/web")
    assert fake.calls == []  # the pod still blocks; it is queued for deletion instead
    assert await queued(gc) == {"pods|ns/p"}
    fill(ctx, rt("Pod"))
    await gc.sync("replicationcontrollers|ns/web")
    ((_, path, call),) = fake.calls
    assert path == "replicationcontrollers/web"
    assert call["patch"]["metadata"]["$deleteFromPrimitiveList/finalizers"] == [
        "foregroundDeletion"
    ]
