"""``corral drain``'s choice of pods, and its durations (the parts that need no server)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from corral.objects import Obj
from corralctl.nodes import duration, plan


def args(**flags: bool) -> argparse.Namespace:
    defaults = {"ignore_daemonsets": False, "delete_emptydir_data": False, "force": False}
    return argparse.Namespace(**{**defaults, **flags})


def pod(name: str, owner: str | None = "ReplicaSet", **extra: Any) -> Obj:
    metadata: Obj = {"name": name, "namespace": "ns", "uid": name}
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "o", "controller": True}
        ]
    metadata.update(extra.pop("metadata", {}))
    return {"metadata": metadata, "spec": extra.pop("spec", {}), "status": extra.pop("status", {})}


PODS = [
    pod("managed"),
    pod("bare", owner=None),
    pod("daemon", owner="DaemonSet"),
    pod("scratch", spec={"volumes": [{"name": "tmp", "emptyDir": {}}]}),
    pod("mirror", owner=None, metadata={"annotations": {"kubernetes.io/config.mirror": "x"}}),
    pod("finished", owner=None, status={"phase": "Succeeded"}),
]


def test_drain_refuses_what_would_be_lost_unless_told() -> None:
    chosen = plan(PODS, args())
    assert sorted(p["metadata"]["name"] for p in chosen.evict) == ["finished", "managed"]
    assert chosen.refusals == {
        "cannot delete Pods that declare no controller (use --force to override)": ["ns/bare"],
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)": ["ns/daemon"],
        "cannot delete Pods with local storage (use --delete-emptydir-data to override)": [
            "ns/scratch"
        ],
    }


def test_flags_allow_it_with_warnings() -> None:
    chosen = plan(PODS, args(ignore_daemonsets=True, delete_emptydir_data=True, force=True))
    assert sorted(p["metadata"]["name"] for p in chosen.evict) == [
        "bare",
        "finished",
        "managed",
        "scratch",
    ]
    assert chosen.refusals == {}
    assert chosen.warnings == {
        "deleting Pods that declare no controller": ["ns/bare"],
        "ignoring DaemonSet-managed Pods": ["ns/daemon"],
        "deleting Pods with local storage": ["ns/scratch"],
    }


def test_durations() -> None:
    assert duration("90") == 90.0
    assert duration("90s") == 90.0
    assert duration("2m") == 120.0
    assert duration("1h") == 3600.0
    assert duration("500ms") == 0.5
    with pytest.raises(argparse.ArgumentTypeError):
        duration("soon")
