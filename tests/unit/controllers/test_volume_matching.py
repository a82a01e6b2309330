"""Which volume a claim binds to, and where a volume may be used (corral.volumebinding)."""

from __future__ import annotations

from typing import Any

from controlplane.controllers.persistentvolume import local_volume
from corral import volumebinding as vb
from corral.objects import Obj


def claim(**spec: Any) -> Obj:
    base: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": "static",
    }
    base.update(spec)
    return {"metadata": {"name": "data", "namespace": "db", "uid": "u-data"}, "spec": base}


def volume(name: str, size: str = "1Gi", labels: Obj | None = None, **spec: Any) -> Obj:
    base: Obj = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
        "storageClassName": "static",
    }
    base.update(spec)
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": base}


def names(found: Obj | None) -> str | None:
    return None if found is None else found["metadata"]["name"]


def test_the_smallest_volume_that_fits_wins() -> None:
    volumes = [volume("big", "10Gi"), volume("small", "512Mi"), volume("snug", "2Gi")]
    assert names(vb.best_fit(volumes, claim())) == "snug"


def test_class_access_modes_mode_and_selector_must_all_fit() -> None:
    c = claim(accessModes=["ReadWriteMany"])
    assert vb.best_fit([volume("a")], c) is None
    assert vb.best_fit([volume("a", storageClassName="other")], claim()) is None
    assert vb.best_fit([volume("a", volumeMode="Block")], claim()) is None
    picky = claim(selector={"matchLabels": {"tier": "fast"}})
    assert names(vb.best_fit([volume("slow"), volume("fast", labels={"tier": "fast"})], picky)) == (
        "fast"
    )
    # No class on the claim binds only to volumes with no class.
    assert (
        names(
            vb.best_fit(
                [volume("a"), volume("none", storageClassName="")], claim(storageClassName="")
            )
        )
        == "none"
    )


def test_volumes_held_by_others_or_going_away_are_not_free() -> None:
    held = volume("held", claimRef={"namespace": "db", "name": "other", "uid": "u-other"})
    going = volume("going")
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert vb.best_fit([held, going], claim()) is None


def test_a_volume_reserved_for_the_claim_wins_over_a_smaller_one() -> None:
    reserved = volume("reserved", "10Gi", claimRef={"namespace": "db", "name": "data"})
    assert names(vb.best_fit([volume("small"), reserved], claim())) == "reserved"
    # Reserved for an earlier claim of the same name (another uid): not this one's.
    stale = volume("stale", claimRef={"namespace": "db", "name": "data", "uid": "u-old"})
    assert vb.best_fit([stale], claim()) is None


def test_node_affinity_narrows_the_choice_to_the_selected_node() -> None:
    on_n1 = volume("on-n1", nodeAffinity=vb.pinned_to("n1"))
    on_n2 = volume("on-n2", "5Gi", nodeAffinity=vb.pinned_to("n2"))
    labels = {vb.HOSTNAME_LABEL: "n2"}
    assert names(vb.best_fit([on_n1, on_n2], claim(), node="n2", labels=labels)) == "on-n2"
    assert vb.admits(on_n1, "n1", {vb.HOSTNAME_LABEL: "n1"})
    assert not vb.admits(on_n1, "n2", labels)
    by_field = volume(
        "f",
        nodeAffinity={
            "required": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]}
                ]
            }
        },
    )
    assert vb.admits(by_field, "n3", {}) and not vb.admits(by_field, "n1", {})
    assert vb.pinned_node(on_n1) == "n1" and vb.pinned_node(by_field) == "n3"
    assert vb.admits(volume("anywhere"), "n9", {})


def test_the_local_provisioner_pins_a_relative_path_to_the_node() -> None:
    made = local_volume(claim(storageClassName="corral-local"), {"reclaimPolicy": "Retain"}, "n2")
    assert made["metadata"]["name"] == "pvc-u-data"
    assert made["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": "corral.io/local"}
    assert made["metadata"]["finalizers"] == ["corral.io/local-volume-cleanup"]
    spec = made["spec"]
    assert spec["local"] == {"path": "pvc-u-data"}
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["claimRef"]["uid"] == "u-data" and spec["capacity"] == {"storage": "1Gi"}
    assert vb.pinned_node(made) == "n2"
    assert vb.fits(made, claim(storageClassName="corral-local"))


def test_claim_names_of_a_pod() -> None:
    pod = {
        "spec": {
            "volumes": [
                {"name": "a", "persistentVolumeClaim": {"claimName": "x"}},
                {"name": "b", "emptyDir": {}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "x"}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "y"}},
            ]
        }
    }
    assert vb.claim_names(pod) == ["x", "y"]
