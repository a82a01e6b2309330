"""corral's version, and the Kubernetes API level it speaks."""

from __future__ import annotations

import platform
import sys
from typing import Any

VERSION = "0.1.0"

# The Kubernetes API level corral is wire-compatible with. kubectl
# dispatchers pick a client by the server's minor version, so this is what
# /version must report for kubectl to behave as a 1.32 client.
KUBE_MAJOR = "1"
KUBE_MINOR = "32"


def server_version() -> dict[str, Any]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0+corral-{VERSION}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
        "compiler": "cpython",
        "platform": f"linux/{arch}",
    }
