"""Print corral's package layout as a mermaid diagram, from the imports the code makes.

    python tools/layers.py > /tmp/layers.mmd

Each top-level package is a box holding its subpackages (and, for corral/,
its modules); an arrow is drawn from a package to each package it imports,
labelled with how many module-to-module imports there are. grimp reads the
imports, function-level ones included, as the import contract does.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "corralctl": "corralctl/: the corral CLI and local-cluster tooling",
    "controlplane": "controlplane/: API server, controllers, agent API",
    "scheduler": "scheduler/",
    "nodeagent": "nodeagent/: the node agent",
    "corral": "corral/: the library the services share",
}


def _members(graph: grimp.ImportGraph, package: str) -> list[str]:
    """The subpackages of ``package``; for corral/, its modules too (what services use)."""
    children = sorted(graph.find_children(package))
    shown = []
    for child in children:
        name = child.split(".", 1)[1]
        if graph.find_children(child):
            shown.append(f"{name}/")
        elif package == "corral" and not name.startswith("_"):
            shown.append(name)
    return shown


def diagram() -> str:
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges: Counter[tuple[str, str]] = Counter()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            source, target = module.split(".")[0], imported.split(".")[0]
            if source != target:
                edges[(source, target)] += 1
    lines = ["flowchart TB"]
    for package, title in PACKAGES.items():
        members = " · ".join(_members(graph, package))
        lines.append(f'  {package}["<b>{title}</b><br/>{members}"]')
    for (source, target), count in sorted(edges.items()):
        lines.append(f"  {source} -->|{count} imports| {target}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(diagram())
