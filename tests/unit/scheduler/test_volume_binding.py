"""VolumeBinding: filter by the pod's claims and volumes; PreBind promises claims to the node."""

from __future__ import annotations

from typing import Any

import pytest

from corral import volumebinding as vb
from corral.objects import Obj
from scheduler.framework import Code, CycleState
from scheduler.plugins.volume_binding import (
    AFFINITY_CONFLICT,
    NO_VOLUME_TO_BIND,
    SELECTED_ELSEWHERE,
    VolumeBinding,
)
from scheduler.volumes import VolumeBindingConflict, VolumeStore, pre_bind
from tests.unit.scheduler.builders import node_info, pod, pod_info


def claim(
    name: str, *, cls: str = "local", volume: str = "", annotations: Obj | None = None
) -> Obj:
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": cls,
    }
    if volume:
        spec["volumeName"] = volume
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def volume(name: str, node: str | None, *, cls: str = "static", size: str = "5Gi") -> Obj:
    spec: Obj = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": cls,
        "local": {"path": name},
    }
    if node is not None:
        spec["nodeAffinity"] = vb.pinned_to(node)
    return {"metadata": {"name": name}, "spec": spec}


CLASSES = {
    "local": {"provisioner": "corral.io/local", "volumeBindingMode": "WaitForFirstConsumer"},
    "static": {
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
    },
    "now": {"provisioner": "example.com/nfs", "volumeBindingMode": "Immediate"},
}


def store(claims: list[Obj], volumes: list[Obj] = ()) -> VolumeStore:  # type: ignore[assignment]
    return VolumeStore(
        {f"default/{c['metadata']['name']}": c for c in claims},
        {v["metadata"]["name"]: v for v in volumes},
        CLASSES,
    )


def pod_using(*claims: str, node_name: str | None = None) -> Obj:
    obj = pod("db-0", node_name=node_name)
    obj["spec"]["volumes"] = [
        {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)
    ]
    return obj


NODES = [node_info(name=n, labels={"kubernetes.io/hostname": n}) for n in ("n1", "n2", "n3")]


def feasible(plugin: VolumeBinding, obj: Obj) -> tuple[Code, list[str], list[str]]:
    """The pre-filter's code, the nodes that pass, and the reasons of those that do not."""
    state = CycleState()
    info = pod_info(obj)
    status = plugin.pre_filter(state, info)
    if not status.is_success:
        return status.code, [], list(status.reasons)
    passed = [n.name for n in NODES if plugin.filter(state, info, n).is_success]
    assert [n.name for n in plugin.select(state, info, NODES)] == passed
    reasons = sorted({r for n in NODES for r in plugin.filter(state, info, n).reasons})
    return status.code, passed, reasons


def test_a_pod_without_claims_is_not_its_business() -> None:
    assert VolumeBinding(store([])).pre_filter(CycleState(), pod_info(pod("web"))).is_skip


def test_a_missing_claim_is_unschedulable_with_its_name() -> None:
    code, _, reasons = feasible(VolumeBinding(store([])), pod_using("data"))
    assert code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert reasons == ['persistentvolumeclaim "data" not found']


def test_a_claim_being_deleted_is_not_used() -> None:
    going = claim("data")
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    _, _, reasons = feasible(VolumeBinding(store([going])), pod_using("data"))
    assert reasons == ['persistentvolumeclaim "data" is being deleted']


def test_a_bound_claim_sends_the_pod_to_its_volumes_node() -> None:
    plugin = VolumeBinding(store([claim("data", volume="pv-1")], [volume("pv-1", "n2")]))
    code, nodes, reasons = feasible(plugin, pod_using("data"))
    assert (code, nodes, reasons) == (Code.SUCCESS, ["n2"], [AFFINITY_CONFLICT])


def test_an_unbound_immediate_claim_waits() -> None:
    _, nodes, reasons = feasible(
        VolumeBinding(store([claim("data", cls="now")])), pod_using("data")
    )
    assert nodes == [] and reasons == ["pod has unbound immediate PersistentVolumeClaims"]


def test_a_waiting_claim_of_the_local_provisioner_fits_anywhere() -> None:
    _, nodes, _ = feasible(VolumeBinding(store([claim("data")])), pod_using("data"))
    assert nodes == ["n1", "n2", "n3"]


def test_a_waiting_claim_already_promised_goes_only_there() -> None:
    promised = claim("data", annotations={vb_selected(): "n3"})
    _, nodes, reasons = feasible(VolumeBinding(store([promised])), pod_using("data"))
    assert nodes == ["n3"] and reasons == [SELECTED_ELSEWHERE]


def vb_selected() -> str:
    from corral.api.storage import SELECTED_NODE_ANNOTATION

    return SELECTED_NODE_ANNOTATION


def test_a_waiting_static_claim_needs_a_free_fitting_volume_on_the_node() -> None:
    volumes = [
        volume("small", "n1", size="512Mi"),  # too small
        volume("fits", "n2"),
        volume("taken", "n3"),
    ]
    volumes[2]["spec"]["claimRef"] = {"namespace": "default", "name": "other", "uid": "x"}
    plugin = VolumeBinding(store([claim("data", cls="static")], volumes))
    _, nodes, reasons = feasible(plugin, pod_using("data"))
    assert nodes == ["n2"] and reasons == [NO_VOLUME_TO_BIND]


# --- PreBind -------------------------------------------------------------------------------


class RecordingClient:
    def __init__(self, fail: int | None = None) -> None:
        self.patches: list[tuple[str, Obj]] = []
        self.fail = fail

    async def patch(self, rt: Any, name: str, body: Obj, namespace: str | None = None) -> Obj:
        if self.fail is not None:
            from corral.api.errors import ApiError

            raise ApiError(self.fail, "Conflict", "changed")
        self.patches.append((name, body))
        return body


async def test_pre_bind_promises_only_the_waiting_claims() -> None:
    claims = [claim("data"), claim("bound", volume="pv-1"), claim("nfs", cls="now")]
    client = RecordingClient()
    await pre_bind(client, store(claims), pod_using("data", "bound", "nfs"), "n2")  # type: ignore[arg-type]
    assert client.patches == [
        (
            "data",
            {"metadata": {"resourceVersion": "7", "annotations": {vb_selected(): "n2"}}},
        )
    ]


async def test_pre_bind_refuses_a_claim_promised_elsewhere() -> None:
    promised = claim("data", annotations={vb_selected(): "n1"})
    with pytest.raises(VolumeBindingConflict, match='already selected for node "n1"'):
        await pre_bind(RecordingClient(), store([promised]), pod_using("data"), "n2")  # type: ignore[arg-type]
    # The same node again is no news.
    client = RecordingClient()
    await pre_bind(client, store([promised]), pod_using("data"), "n1")  # type: ignore[arg-type]
    assert client.patches == []


async def test_pre_bind_loses_a_race_as_a_conflict() -> None:
    with pytest.raises(VolumeBindingConflict):
        await pre_bind(RecordingClient(fail=409), store([claim("data")]), pod_using("data"), "n2")  # type: ignore[arg-type]
