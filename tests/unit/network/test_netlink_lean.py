"""The agent loads pyroute2's rtnetlink client without the rest of pyroute2.

Each case runs in a fresh interpreter: whether pyroute2's __init__ ran is a
property of the process, and this one may have imported pyroute2 already.
"""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_the_agents_import_leaves_out_the_parts_of_pyroute2_it_does_not_use() -> None:
    out = _run(
        "import sys, nodeagent.network.netlink as n\n"
        "print(n.AsyncIPRoute.__module__, 'pyroute2.ndb.main' in sys.modules,"
        " 'pyroute2.ipset' in sys.modules)"
    )
    assert out == "pyroute2.iproute.linux False False"


def test_any_other_name_of_the_package_still_loads_the_whole_library() -> None:
    out = _run(
        "import nodeagent.network.netlink, sys\n"
        "from pyroute2 import IPRoute, NDB\n"
        "import pyroute2\n"
        "print(IPRoute.__name__, NDB.__name__, 'pyroute2.ndb.main' in sys.modules,"
        " pyroute2.AsyncIPRoute is nodeagent.network.netlink.AsyncIPRoute)"
    )
    assert out == "IPRoute NDB True True"


def test_a_process_that_imported_pyroute2_first_keeps_it_whole() -> None:
    out = _run(
        "import pyroute2, sys\n"
        "import nodeagent.network.netlink as n\n"
        "print(sys.modules['pyroute2'] is pyroute2, hasattr(pyroute2, 'NDB'))"
    )
    assert out == "True True"
