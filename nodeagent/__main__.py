"""``python -m nodeagent``: the node agent."""

from __future__ import annotations

import sys

from nodeagent.main import main

if __name__ == "__main__":
    sys.exit(main())
