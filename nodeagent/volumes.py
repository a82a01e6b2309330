"""A pod's volumes on the node: emptyDir, hostPath, configMap, secret, downwardAPI and claims.

Each lives under ``<data-dir>/pods/<uid>/volumes/<name>`` (hostPath excepted)
and is bind-mounted into the containers that name it. configMap, secret and
downwardAPI files are written atomically (a new directory swapped in), so a
reader never sees a half-written set.
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.objects import Obj, meta, spec
from nodeagent.subpath import release

Fetch = Callable[[str, str], Awaitable[Obj | None]]  # (namespace, name) -> object or None
# (namespace, claim name) -> the directory of the local volume bound to the claim.
ResolveClaim = Callable[[str, str], Awaitable[Path]]


class VolumeError(Exception):
    """A volume could not be prepared; the pod waits with a FailedMount event."""


@dataclass(frozen=True)
class PreparedVolume:
    name: str
    path: str
    read_only: bool = False


# Where subPath mounts are staged (see nodeagent.subpath), per pod.
SUBPATHS_DIR = "volume-subpaths"


def pod_dir(root: Path, uid: str) -> Path:
    return root / uid


def _write_files(target: Path, files: dict[str, bytes], mode: int) -> None:
    """Swap a complete new set of files in, as the kubelet's atomic writer does."""
    target.mkdir(parents=True, exist_ok=True)
    staging = target / f"..{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    for relative, data in files.items():
        if relative.startswith("/") or ".." in relative.split("/"):
            raise VolumeError(f'item path "{relative}" escapes the volume')
        destination = staging / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
        os.chmod(destination, mode)
    current = target / "..data"
    link_tmp = target / f"..data_tmp_{uuid.uuid4().hex[:8]}"
    os.symlink(staging.name, link_tmp)
    old = os.readlink(current) if current.is_symlink() else None
    os.replace(link_tmp, current)
    for relative in files:
        top = relative.split("/", 1)[0]
        visible = target / top
        if not visible.is_symlink():
            if visible.exists():
                shutil.rmtree(visible) if visible.is_dir() else visible.unlink()
            os.symlink(f"..data/{top}", visible)
    if old and old != staging.name:
        shutil.rmtree(target / old, ignore_errors=True)


def _items(data: dict[str, bytes], items: list[Obj] | None) -> dict[str, bytes]:
    if not items:
        return data
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            raise VolumeError(f'configuration key "{key}" not found')
        out[item.get("path") or key] = data[key]
    return out


def _field(pod: Obj, path: str) -> str:
    metadata = meta(pod)
    if path in ("metadata.labels", "metadata.annotations"):
        values = metadata.get(path.split(".", 1)[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    current: Any = pod
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return "" if current is None else str(current)


async def prepare(
    pod: Obj,
    root: Path,
    get_configmap: Fetch,
    get_secret: Fetch,
    resolve_claim: ResolveClaim | None = None,
) -> dict[str, PreparedVolume]:
    metadata = meta(pod)
    namespace = metadata.get("namespace", "default")
    base = pod_dir(root, metadata.get("uid", "")) / "volumes"
    prepared: dict[str, PreparedVolume] = {}
    for volume in spec(pod).get("volumes") or []:
        name = volume["name"]
        path = base / name
        if volume.get("emptyDir") is not None:
            path.mkdir(parents=True, exist_ok=True)
            if (volume["emptyDir"] or {}).get("medium") == "Memory":
                _ensure_tmpfs(path)
            prepared[name] = PreparedVolume(name, str(path))
        elif volume.get("hostPath") is not None:
            prepared[name] = PreparedVolume(name, _host_path(volume["hostPath"]))
        elif volume.get("configMap") is not None:
            source = volume["configMap"]
            found = await get_configmap(namespace, source.get("name", ""))
            if found is None:
                if source.get("optional"):
                    path.mkdir(parents=True, exist_ok=True)
                    prepared[name] = PreparedVolume(name, str(path), True)
                    continue
                raise VolumeError(f'configmap "{source.get("name")}" not found')
            data = {k: v.encode() for k, v in (found.get("data") or {}).items()}
            data.update(
                {k: base64.b64decode(v) for k, v in (found.get("binaryData") or {}).items()}
            )
            _write_files(
                path, _items(data, source.get("items")), int(source.get("defaultMode") or 0o644)
            )
            prepared[name] = PreparedVolume(name, str(path), True)
        elif volume.get("secret") is not None:
            source = volume["secret"]
            found = await get_secret(namespace, source.get("secretName", ""))
            if found is None:
                if source.get("optional"):
                    path.mkdir(parents=True, exist_ok=True)
                    prepared[name] = PreparedVolume(name, str(path), True)
                    continue
                raise VolumeError(f'secret "{source.get("secretName")}" not found')
            path.mkdir(parents=True, exist_ok=True)
            # Secret files live in memory only, never on the node's disk.
            _ensure_tmpfs(path)
            data = {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
            _write_files(
                path, _items(data, source.get("items")), int(source.get("defaultMode") or 0o644)
            )
            prepared[name] = PreparedVolume(name, str(path), True)
        elif volume.get("downwardAPI") is not None:
            source = volume["downwardAPI"]
            files = {
                item["path"]: _field(
                    pod, (item.get("fieldRef") or {}).get("fieldPath", "")
                ).encode()
                for item in source.get("items") or []
            }
            _write_files(path, files, int(source.get("defaultMode") or 0o644))
            prepared[name] = PreparedVolume(name, str(path), True)
        elif volume.get("persistentVolumeClaim") is not None:
            source = volume["persistentVolumeClaim"]
            if resolve_claim is None:
                raise VolumeError("this node keeps no persistent volumes")
            # The data lives under the agent's volumes directory, not the pod's:
            # it outlives the pod (nodeagent.localvolumes).
            directory = await resolve_claim(namespace, source.get("claimName", ""))
            prepared[name] = PreparedVolume(name, str(directory), bool(source.get("readOnly")))
        else:
            raise VolumeError(f'volume "{name}" has no source corral supports')
    return prepared


def _host_path(source: Obj) -> str:
    path = str(source.get("path", ""))
    kind = source.get("type") or ""
    target = Path(path)
    if kind == "DirectoryOrCreate":
        target.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    elif kind:
        checks = {
            "Directory": stat.S_ISDIR,
            "File": stat.S_ISREG,
            "Socket": stat.S_ISSOCK,
            "CharDevice": stat.S_ISCHR,
            "BlockDevice": stat.S_ISBLK,
        }
        try:
            mode = os.stat(path).st_mode
        except OSError:
            raise VolumeError(f"hostPath type check failed: {path} is not a {kind}") from None
        if kind in checks and not checks[kind](mode):
            raise VolumeError(f"hostPath type check failed: {path} is not a {kind}")
    return path


def _ensure_tmpfs(path: Path) -> None:
    if os.path.ismount(path):
        return
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise VolumeError(f"cannot mount a tmpfs at {path}: {result.stderr.strip()}")


def cleanup(root: Path, uid: str) -> None:
    """Unmount and remove everything a pod had on the node."""
    directory = pod_dir(root, uid)
    if not directory.exists():
        return
    release(directory / SUBPATHS_DIR)
    volumes = directory / "volumes"
    if volumes.exists():
        for entry in volumes.iterdir():
            if os.path.ismount(entry):
                subprocess.run(["umount", "-l", str(entry)], capture_output=True, check=False)
    shutil.rmtree(directory, ignore_errors=True)
