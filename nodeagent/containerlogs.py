"""How big a container's log may grow on the node: kubelet's containerLogMaxSize/Files.

Docker rotates the json-file log itself once it is told ``max-size`` and
``max-file``; without them the file grows for as long as the container lives.
The defaults are kubelet's: 10 MiB a file, 5 files.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from corral.api.quantity import parse_quantity

DEFAULT_MAX_SIZE = "10Mi"
DEFAULT_MAX_FILES = 5


@dataclass(frozen=True)
class ContainerLogLimits:
    max_size_bytes: int = 10 * 1024 * 1024
    max_files: int = DEFAULT_MAX_FILES

    def docker_log_config(self) -> dict[str, object]:
        """The HostConfig.LogConfig that makes dockerd rotate at these limits."""
        return {
            "Type": "json-file",
            "Config": {"max-size": str(self.max_size_bytes), "max-file": str(self.max_files)},
        }


def log_limits(max_size: str, max_files: int) -> ContainerLogLimits:
    """Parse the agent's flags (``--container-log-max-size 10Mi``); ValueError if invalid."""
    try:
        size = int(parse_quantity(max_size))
    except Exception as error:
        raise ValueError(f"--container-log-max-size: invalid quantity {max_size!r}") from error
    # dockerd refuses a max-size under its own minimum; kubelet too wants a
    # usable file, and at least 2 files so that rotation keeps something.
    if size < 1024:
        raise ValueError("--container-log-max-size must be at least 1Ki")
    if max_files < 2:
        raise ValueError("--container-log-max-files must be at least 2")
    return ContainerLogLimits(max_size_bytes=size, max_files=max_files)


def add_container_log_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("container logs")
    group.add_argument(
        "--container-log-max-size",
        default=DEFAULT_MAX_SIZE,
        help="rotate a container's log file at this size (kubelet's containerLogMaxSize)",
    )
    group.add_argument(
        "--container-log-max-files",
        type=int,
        default=DEFAULT_MAX_FILES,
        help="keep at most this many log files per container (containerLogMaxFiles)",
    )
    group.add_argument(
        "--log-store",
        default="",
        help="ship container logs to this systemd-journal-remote URL "
        "(e.g. http://10.0.0.1:19532); empty: keep them on the node only",
    )


def limits_from(args: argparse.Namespace) -> ContainerLogLimits:
    try:
        return log_limits(args.container_log_max_size, args.container_log_max_files)
    except ValueError as error:
        raise SystemExit(f"corral agent: {error}") from None
