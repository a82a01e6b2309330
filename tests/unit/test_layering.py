"""The layering holds, and the check that holds it fails when it should.

The import contract lives in pyproject.toml's ``[tool.importlinter]`` and
runs as ``lint-imports`` in ./dev test; here it runs on this tree, and on a
copy of it with one import that breaks each contract, to show it catches one.

Import circles between modules are found with grimp. Function-level imports
count: an import moved into a function to dodge a circle (as cli/down.py did
with up.py) is still a circle. So do imports under ``TYPE_CHECKING``: they
run under mypy, and the two modules still cannot be understood apart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("corral", "corralctl", "controlplane", "scheduler", "nodeagent")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_tree(destination: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test_the_tree_keeps_the_import_contract() -> None:
    checked = _lint_imports(ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 kept, 0 broken" in checked.stdout, checked.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "corral/layering_violation.py",
            "import controlplane.apiserver.app",
            "corral/ is the library the services share: it imports no service and no tool BROKEN",
        ),
        (
            "scheduler/layering_violation.py",
            "from nodeagent import agent",
            "the services never import each other BROKEN",
        ),
        (
            "nodeagent/layering_violation.py",
            "def late() -> None:\n    import corralctl.main\n",
            "corralctl/ (the CLI and local tooling) sits on top: nothing imports it BROKEN",
        ),
    ],
)
def test_the_contract_fails_on_a_deliberate_violation(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    (tree / module).write_text(f"{line}\n")
    checked = _lint_imports(tree)
    assert checked.returncode != 0, checked.stdout
    assert contract in checked.stdout, checked.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in checked.stdout, checked.stdout
    assert "2 kept, 1 broken" in checked.stdout, checked.stdout


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        # Iterative, so a deep chain of imports cannot hit the recursion limit.
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, imported = work[-1]
            for target in imported:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    targets = iter(sorted(graph.find_modules_directly_imported_by(target)))
                    work.append((target, targets))
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return sorted(cycles)


def test_the_cycle_finder_finds_a_circle_and_only_that() -> None:
    graph = grimp.ImportGraph()
    for module in ("p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.d", imported="p.a")
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_import_circles_between_modules() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))
    cycles = import_cycles(graph)
    for cycle in cycles:
        print("import circle:", " <-> ".join(cycle))
    assert not cycles, cycles
