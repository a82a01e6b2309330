"""What the code imports is declared, and what is declared is pinned in constraints.txt.

The declared lower bounds themselves are tested by ``./dev mindeps`` (in
CI): a venv at those versions imports every module and passes these tests.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import deps  # noqa: E402

PACKAGES = ("corral", "corralctl", "controlplane", "scheduler", "nodeagent")
# Imported, but not declared on purpose.
UNDECLARED = {
    # pydantic pins the exact pydantic-core it was built with.
    "pydantic-core": "pydantic",
    # Only corral/proto/generate.py, the developer's regeneration tool (test extra).
    "grpcio-tools": "test",
}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level names imported by corral's packages that are not theirs or the stdlib's."""
    ours = set(PACKAGES)
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in ours and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _declared(*extras: str) -> dict[str, Requirement]:
    return {
        canonicalize_name(r.name): r
        for r in (Requirement(text) for text in deps.declared(extras=extras))
    }


def test_every_imported_distribution_is_declared() -> None:
    declared = _declared()
    providers = importlib.metadata.packages_distributions()
    missing = []
    for top, where in sorted(_third_party_imports().items()):
        distributions = {canonicalize_name(d) for d in providers.get(top, [])}
        assert distributions, f"{top} (imported by {sorted(where)}) is not installed"
        if not distributions & (set(declared) | set(UNDECLARED)):
            missing.append(f"{top} ({', '.join(sorted(distributions))}): {sorted(where)[:3]}")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


@pytest.mark.parametrize("extras", [(), ("test",)])
def test_constraints_pin_every_declared_dependency_within_its_range(
    extras: tuple[str, ...],
) -> None:
    pins = deps.locked()
    for name, requirement in _declared(*extras).items():
        assert name in pins, f"{name} is declared but not pinned: run python tools/deps.py lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement.specifier}"
        )


def test_each_declared_minimum_is_inside_its_own_range() -> None:
    declared = _declared()
    for pin in deps.minimums():
        name, version = pin.split("==")
        if name in declared:
            specifier: SpecifierSet = declared[name].specifier
            assert specifier.contains(version, prereleases=True), (pin, str(specifier))
