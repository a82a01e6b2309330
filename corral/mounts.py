"""This mount namespace's mount points, read from the kernel's table.

``os.path.ismount`` cannot see a bind mount within one filesystem, so
code that must find every mount under a directory reads
``/proc/self/mountinfo`` instead.
"""

from __future__ import annotations


def mount_points() -> set[str]:
    points = set()
    try:
        with open("/proc/self/mountinfo", "rb") as table:
            for line in table:
                fields = line.split(b" ")
                if len(fields) > 4:
                    # Spaces and such are octal-escaped in the table.
                    points.add(fields[4].decode("unicode_escape").encode("latin-1").decode())
    except OSError:
        return set()
    return points


def mounts_under(directory: str) -> list[str]:
    """The mount points strictly below ``directory``, deepest first."""
    prefix = directory.rstrip("/") + "/"
    return sorted((p for p in mount_points() if p.startswith(prefix)), key=len, reverse=True)
