"""``python -m scheduler`` (what ``corral scheduler`` runs)."""

import sys

from scheduler.main import main

sys.exit(main())
