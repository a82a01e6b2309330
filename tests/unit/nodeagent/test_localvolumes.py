"""A pod's claim becomes a directory under the agent's volumes directory, and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from corral import volumebinding as vb
from corral.objects import Obj
from nodeagent.localvolumes import ClaimNotReady, LocalVolumes


def claim(volume: str = "pv-1", phase: str = "Bound") -> Obj:
    return {
        "metadata": {"name": "data", "namespace": "db", "uid": "u-data"},
        "spec": {"volumeName": volume} if volume else {},
        "status": {"phase": phase},
    }


def volume(name: str = "pv-1", node: str = "n1", **spec: Any) -> Obj:
    base: Obj = {
        "claimRef": {"namespace": "db", "name": "data", "uid": "u-data"},
        "local": {"path": name},
        "nodeAffinity": vb.pinned_to(node),
    }
    base.update(spec)
    return {"metadata": {"name": name}, "spec": base}


def volumes_on(tmp_path: Path, objects: dict[tuple[str, str], Obj | None]) -> LocalVolumes:
    async def get(kind: str, namespace: str, name: str) -> Obj | None:
        return objects.get((kind, name))

    return LocalVolumes(tmp_path / "volumes", "n1", lambda: {"disk": "ssd"}, get)


async def test_a_bound_claim_resolves_to_a_new_directory_that_survives(tmp_path: Path) -> None:
    local = volumes_on(
        tmp_path,
        {("PersistentVolumeClaim", "data"): claim(), ("PersistentVolume", "pv-1"): volume()},
    )
    path = await local.resolve("db", "data")
    assert path == tmp_path / "volumes" / "pv-1" and path.is_dir()
    (path / "kept").write_text("x")
    assert (await local.resolve("db", "data")) == path
    assert (path / "kept").read_text() == "x"
    local.remove("pv-1")
    assert not path.exists()


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ({}, 'persistentvolumeclaim "data" not found'),
        (
            {("PersistentVolumeClaim", "data"): claim("", "Pending")},
            "is not bound to a volume yet (phase Pending)",
        ),
        ({("PersistentVolumeClaim", "data"): claim()}, 'persistentvolume "pv-1" not found'),
        (
            {
                ("PersistentVolumeClaim", "data"): claim(),
                ("PersistentVolume", "pv-1"): volume(
                    claimRef={"namespace": "db", "name": "other", "uid": "u-other"}
                ),
            },
            'is not bound to claim "data"',
        ),
        (
            {
                ("PersistentVolumeClaim", "data"): claim(),
                ("PersistentVolume", "pv-1"): volume(node="n2"),
            },
            "its node affinity names another node",
        ),
        (
            {
                ("PersistentVolumeClaim", "data"): claim(),
                ("PersistentVolume", "pv-1"): volume(local=None, hostPath={"path": "/etc"}),
            },
            "corral mounts only local volumes",
        ),
        (
            {
                ("PersistentVolumeClaim", "data"): claim(),
                ("PersistentVolume", "pv-1"): volume(local={"path": "/etc"}),
            },
            "must be one directory name",
        ),
        (
            {
                ("PersistentVolumeClaim", "data"): claim(),
                ("PersistentVolume", "pv-1"): volume(local={"path": "other-pv/deeper"}),
            },
            "must be one directory name",
        ),
        (
            {
                ("PersistentVolumeClaim", "data"): claim(),
                ("PersistentVolume", "pv-1"): volume(local={"path": ".."}),
            },
            "must be one directory name",
        ),
    ],
    ids=[
        "no claim",
        "unbound",
        "no volume",
        "volume bound elsewhere",
        "other node",
        "hostPath",
        "absolute path",
        "nested path",
        "dot-dot",
    ],
)
async def test_claims_that_cannot_be_used_here_wait_with_the_reason(
    tmp_path: Path, objects: dict[tuple[str, str], Obj | None], message: str
) -> None:
    with pytest.raises(ClaimNotReady, match=message.replace("(", r"\(").replace(")", r"\)")):
        await volumes_on(tmp_path, objects).resolve("db", "data")
    # Nothing outside the volumes directory was touched or created.
    assert not (tmp_path / "etc").exists()


async def test_a_symlink_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "volumes").mkdir()
    os.symlink(outside, tmp_path / "volumes" / "pv-1")
    local = volumes_on(
        tmp_path,
        {("PersistentVolumeClaim", "data"): claim(), ("PersistentVolume", "pv-1"): volume()},
    )
    with pytest.raises(ClaimNotReady, match="symlink"):
        await local.resolve("db", "data")
    # Cleanup removes the link, never what it points at.
    (outside / "precious").write_text("x")
    local.remove("pv-1")
    assert (outside / "precious").exists()


def test_remove_refuses_names_that_leave_the_directory(tmp_path: Path) -> None:
    local = volumes_on(tmp_path, {})
    for bad in ("..", "a/b", "/etc", ""):
        with pytest.raises(ValueError):
            local.remove(bad)
