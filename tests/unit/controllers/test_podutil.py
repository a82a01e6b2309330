"""Shared pod helpers: readiness, claiming, pods from templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controlplane.controllers import podutil
from controlplane.controllers.podutil import Claim
from corral.api.labels import selector_from_set
from corral.clock import rfc3339
from corral.objects import Obj

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def owner(*, deleting: bool = False) -> Obj:
    metadata: Obj = {"name": "web", "namespace": "ns", "uid": "owner-uid"}
    if deleting:
        metadata["deletionTimestamp"] = rfc3339(T0)
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata}


def pod(labels: dict[str, str], ref_uid: str | None = None, *, deleting: bool = False) -> Obj:
    metadata: Obj = {"name": "p", "uid": "pod-uid", "labels": labels}
    if ref_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "x",
                "uid": ref_uid,
                "controller": True,
            }
        ]
    if deleting:
        metadata["deletionTimestamp"] = rfc3339(T0)
    return {"metadata": metadata}


SELECTOR = selector_from_set({"app": "web"})


def test_claim_decisions() -> None:
    assert podutil.claim(pod({"app": "web"}, "owner-uid"), owner(), SELECTOR) is Claim.KEEP
    assert podutil.claim(pod({"app": "db"}, "owner-uid"), owner(), SELECTOR) is Claim.RELEASE
    assert podutil.claim(pod({"app": "web"}), owner(), SELECTOR) is Claim.ADOPT
    assert podutil.claim(pod({"app": "web"}, "other"), owner(), SELECTOR) is Claim.IGNORE
    assert podutil.claim(pod({"app": "db"}), owner(), SELECTOR) is Claim.IGNORE
    # A terminating pod is not adopted; an owner being deleted neither adopts nor releases.
    assert podutil.claim(pod({"app": "web"}, deleting=True), owner(), SELECTOR) is Claim.IGNORE
    deleting = owner(deleting=True)
    assert podutil.claim(pod({"app": "web"}), deleting, SELECTOR) is Claim.IGNORE
    assert podutil.claim(pod({"app": "db"}, "owner-uid"), deleting, SELECTOR) is Claim.IGNORE


def test_patches_carry_the_pod_uid_as_a_precondition() -> None:
    adopt = podutil.adopt_patch(owner(), pod({}))
    assert adopt["metadata"]["uid"] == "pod-uid"
    assert adopt["metadata"]["ownerReferences"][0]["uid"] == "owner-uid"
    release = podutil.release_patch("owner-uid", pod({}))
    assert release == {
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": "owner-uid"}],
            "uid": "pod-uid",
        }
    }


def test_pod_from_template() -> None:
    template = {
        "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    made = podutil.pod_from_template(template, owner())
    assert made["metadata"]["generateName"] == "web-"
    assert made["metadata"]["namespace"] == "ns"
    assert made["metadata"]["labels"] == {"app": "web"}
    assert made["metadata"]["annotations"] == {"a": "b"}
    assert made["spec"] == template["spec"] and made["spec"] is not template["spec"]
    long_name = podutil.generate_name_for("x" * 80)
    assert len(long_name) == 58


def test_readiness_and_availability() -> None:
    ready = {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(T0)}],
        }
    }
    assert podutil.is_ready(ready)
    assert podutil.is_available(ready, 0, T0)
    assert not podutil.is_available(ready, 5, T0 + timedelta(seconds=4))
    assert podutil.is_available(ready, 5, T0 + timedelta(seconds=5))
    assert not podutil.is_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not podutil.is_active({"status": {"phase": "Succeeded"}})
    assert not podutil.is_active({"metadata": {"deletionTimestamp": rfc3339(T0)}})
    assert podutil.is_active({"status": {"phase": "Pending"}})
