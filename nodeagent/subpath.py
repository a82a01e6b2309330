"""subPath mounts that cannot be steered outside their volume.

The attacks are CVE-2017-1002101 and CVE-2021-25741: a container plants a
symlink in a volume it shares (``emptyDir/escape -> /``), and a later
container mounting ``subPath: escape`` gets the host's root, because the
runtime follows the link when it bind-mounts. Checking the path first and
mounting it afterwards is not enough either: the link can be swapped in
between.

So, as the kubelet's fix does, each component is opened relative to the
previous one with ``O_NOFOLLOW`` (a symlink anywhere in the subPath is
refused, and ``..`` never appears), and the file descriptor of the final
component is bind-mounted, through ``/proc/self/fd``, onto a private
staging path. Docker then mounts the staging path, which is a mount
point whose target can no longer change.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
from pathlib import Path, PurePosixPath

from corral.mounts import mount_points, mounts_under

_MS_BIND = 4096
_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class SubPathError(Exception):
    pass


def _components(sub_path: str) -> list[str]:
    path = PurePosixPath(sub_path)
    if path.is_absolute():
        raise SubPathError(f"subPath {sub_path!r} must be a relative path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise SubPathError(f"subPath {sub_path!r} must not contain '..'")
    if not parts:
        raise SubPathError("subPath must name something inside the volume")
    return parts


def open_beneath(root: Path, sub_path: str) -> int:
    """An O_PATH descriptor for ``root/sub_path``, reached without following any symlink.

    Missing directories are created, as the kubelet does for a subPath.
    """
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    current = os.open(root, flags | os.O_DIRECTORY)
    try:
        for part in _components(sub_path):
            try:
                following = os.open(part, flags, dir_fd=current)
            except FileNotFoundError:
                # Made meanwhile by a racing writer: the open below, and its
                # symlink check, apply to it all the same.
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=current)
                following = os.open(part, flags, dir_fd=current)
            os.close(current)
            current = following
            if stat.S_ISLNK(os.fstat(current).st_mode):
                raise SubPathError(
                    f"subPath {sub_path!r}: {part!r} is a symlink, which could point outside "
                    "the volume"
                )
        return current
    except BaseException:
        os.close(current)
        raise


def bind_beneath(root: Path, sub_path: str, staging: Path) -> Path:
    """Bind-mount ``root/sub_path`` onto ``staging`` (created) and return ``staging``."""
    fd = open_beneath(root, sub_path)
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        staging.parent.mkdir(parents=True, exist_ok=True)
        if str(staging) in mount_points():
            _unmount(staging)
        if is_dir:
            staging.mkdir(exist_ok=True)
        else:
            staging.touch(exist_ok=True)
        source = f"/proc/self/fd/{fd}".encode()
        if _libc.mount(source, str(staging).encode(), None, _MS_BIND, None) != 0:
            code = ctypes.get_errno()
            raise SubPathError(f"cannot mount subPath {sub_path!r}: {os.strerror(code)}")
    finally:
        os.close(fd)
    return staging


def _unmount(path: Path) -> None:
    if _libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):
            raise OSError(code, os.strerror(code), str(path))


def release(staging_root: Path) -> None:
    """Unmount every staged subPath under ``staging_root``, deepest first."""
    if not staging_root.exists():
        return
    for point in mounts_under(str(staging_root.resolve())):
        _unmount(Path(point))
