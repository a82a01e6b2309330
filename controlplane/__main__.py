"""``python -m controlplane apiserver ...``: the control plane's processes."""

from __future__ import annotations

import sys


def main() -> int:
    commands = ("apiserver", "controller-manager", "encryption", "backup")
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        usage = "usage: python -m controlplane apiserver|controller-manager|encryption|backup ..."
        print(usage, file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    # Imported on demand: each process loads only the code it runs.
    if command == "apiserver":
        from controlplane.apiserver.main import main as apiserver

        return apiserver(rest)
    if command == "backup":
        from controlplane.backup import main as backup

        return backup(rest)
    if command == "encryption":
        from controlplane.encryptiontool import main as encryption

        return encryption(rest)
    from controlplane.controllers.main import main as controller_manager

    return controller_manager(rest)


if __name__ == "__main__":
    sys.exit(main())
