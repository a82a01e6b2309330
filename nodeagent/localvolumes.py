"""Local persistent volumes on this node: resolve a pod's claim to a directory, and clean up.

A ``persistentVolumeClaim`` volume resolves claim -> bound PersistentVolume ->
``<data-dir>/volumes/<local.path>``. The agent mounts a volume only when:

- the claim is Bound to a volume, and that volume's claimRef names the claim
  back (a volume cannot be borrowed by naming it);
- the volume's node affinity admits this node;
- it is a ``local`` volume whose path is one plain name: no ``/``, no
  ``..``, not absolute. The directory is then a direct child of the
  agent's volumes directory, which no container ever sees whole, so no
  container can replace it with a symlink; it is opened with
  ``O_NOFOLLOW`` anyway (``nodeagent.subpath.open_beneath``), so a link
  planted there by anyone else is refused too. ``hostPath`` volumes are
  refused: a PersistentVolume never hands a pod an arbitrary host path.

Anything else is a ``ClaimNotReady`` error, which keeps the pod's containers
waiting with ``CreateContainerConfigError`` and the reason.

The data lives outside the pod's own directory, so it outlives the pod, the
container restarts and the agent. When a released volume of this node is
deleted (reclaim policy Delete), the API server lists it here; the agent
removes the directory and only then lifts ``corral.io/local-volume-cleanup``,
which is what lets the volume object go.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from corral import volumebinding as vb
from corral.objects import Obj, status
from corral.proto import agent_pb2 as pb
from nodeagent.subpath import SubPathError, open_beneath
from nodeagent.volumes import VolumeError

log = logging.getLogger(__name__)

# (kind, namespace, name) -> the object, or None when it does not exist.
GetObject = Callable[[str, str, str], Awaitable[Obj | None]]


class ClaimNotReady(VolumeError):
    """The claim cannot be used here yet (or ever): the pod waits, saying why."""


def safe_name(path: str) -> str | None:
    """``path`` if it is one plain directory name; None otherwise."""
    if not path or "/" in path or path in (".", "..") or "\x00" in path:
        return None
    return path


class LocalVolumes:
    def __init__(
        self,
        root: Path,
        node: str,
        labels: Callable[[], Mapping[str, str]],
        get_object: GetObject,
        clock_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.root = root
        self.node = node
        self.labels = labels
        self.get_object = get_object
        self._sleep = clock_sleep or asyncio.sleep

    # --- mounting -------------------------------------------------------------------------

    async def resolve(self, namespace: str, claim_name: str) -> Path:
        """The directory to mount for ``claim_name``, created if it is the first use."""
        claim = await self.get_object("PersistentVolumeClaim", namespace, claim_name)
        if claim is None:
            raise ClaimNotReady(f'persistentvolumeclaim "{claim_name}" not found')
        volume_name = (claim.get("spec") or {}).get("volumeName")
        phase = status(claim).get("phase")
        if not volume_name or phase != "Bound":
            raise ClaimNotReady(
                f'persistentvolumeclaim "{claim_name}" is not bound to a volume yet '
                f"(phase {phase or 'Pending'})"
            )
        volume = await self.get_object("PersistentVolume", "", volume_name)
        if volume is None:
            raise ClaimNotReady(f'persistentvolume "{volume_name}" not found')
        if not vb.claim_ref_names(volume, claim):
            raise ClaimNotReady(
                f'persistentvolume "{volume_name}" is not bound to claim "{claim_name}"'
            )
        labels = {vb.HOSTNAME_LABEL: self.node, **self.labels()}
        if not vb.admits(volume, self.node, labels):
            raise ClaimNotReady(
                f'persistentvolume "{volume_name}" is not reachable from node "{self.node}" '
                "(its node affinity names another node)"
            )
        spec = volume.get("spec") or {}
        local = spec.get("local")
        if not isinstance(local, Mapping):
            raise ClaimNotReady(
                f'persistentvolume "{volume_name}": corral mounts only local volumes kept in the '
                "node agent's volumes directory"
            )
        name = safe_name(str(local.get("path") or ""))
        if name is None:
            raise ClaimNotReady(
                f'persistentvolume "{volume_name}": local.path {local.get("path")!r} must be one '
                "directory name inside the node agent's volumes directory"
            )
        return await asyncio.to_thread(self._ensure_directory, name)

    def _ensure_directory(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            # Refuses a symlink where the directory should be, and creates it if missing.
            fd = open_beneath(self.root, name)
        except (SubPathError, OSError) as error:
            raise ClaimNotReady(f"local volume directory {name!r}: {error}") from None
        os.close(fd)
        path = self.root / name
        os.chmod(path, 0o777)  # any container user may write its own data, as local-path does
        return path

    # --- cleanup --------------------------------------------------------------------------

    def remove(self, name: str) -> None:
        """Delete a released volume's data; a name that could leave the directory is refused."""
        safe = safe_name(name)
        if safe is None:
            raise ValueError(f"not a local volume name: {name!r}")
        target = self.root / safe
        if target.is_symlink():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)

    async def reclaim_loop(self, control: Callable[[], Any], interval: float = 4.0) -> None:
        """Forever: remove the directories of this node's released volumes, then tell the API."""
        while True:
            await self._sleep(interval)
            stub = control()
            if stub is None:
                continue
            try:
                reply = await stub.ReleasedVolumes(pb.VolumeQuery(node_name=self.node), timeout=10)
            except grpc.aio.AioRpcError as error:
                log.debug("released volumes not listed: %s", error.details())
                continue
            for name in reply.names:
                try:
                    await asyncio.to_thread(self.remove, name)
                except (OSError, ValueError) as error:
                    log.warning("local volume %s not removed: %s", name, error)
                    continue
                try:
                    await stub.VolumeCleaned(
                        pb.VolumeRef(node_name=self.node, name=name), timeout=10
                    )
                except grpc.aio.AioRpcError as error:
                    log.warning("volume %s cleaned but not confirmed: %s", name, error.details())
                    continue
                log.info("removed the data of released local volume %s", name)
