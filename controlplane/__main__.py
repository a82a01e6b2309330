"""``python -m controlplane apiserver ...``: the control plane's processes."""

from __future__ import annotations

import sys


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("apiserver",):
        print("usage: python -m controlplane apiserver [options]", file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "apiserver":
        from controlplane.apiserver.main import main as apiserver

        return apiserver(rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
