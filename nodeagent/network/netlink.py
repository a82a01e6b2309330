"""pyroute2's rtnetlink client and its error, without the rest of pyroute2.

pyroute2's package ``__init__`` imports every part of the library (IPDB, NDB,
ipset, IPVS, wireless, Plan 9...): 163 modules and 12 MiB resident, where the
agent needs AsyncIPRoute and NetlinkError (99 modules, 6.7 MiB). So unless
something imported pyroute2 already, the package is registered here without
running its ``__init__``, and only the submodules named below load. The first
lookup of any other name on the package (``from pyroute2 import IPRoute``)
runs the real ``__init__`` then, so code that wants all of it still gets it.
Every module of the agent imports pyroute2 through this one.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any


def _register_lean_package() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def attribute(name: str) -> Any:
        # A submodule (pyroute2's own "from pyroute2 import config") loads alone.
        try:
            return importlib.import_module(f"pyroute2.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"pyroute2.{name}":
                raise
        # Any other name: the real __init__, once, defines every public name or none.
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = attribute
    sys.modules["pyroute2"] = package


_register_lean_package()

from pyroute2.iproute.linux import AsyncIPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["AsyncIPRoute", "NetlinkError"]
