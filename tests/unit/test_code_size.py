"""Rooms of one idea: no module over 800 lines, no function over 80 (issue 20's acceptance).

The limits are a by-product of splitting code by what it does, not a goal;
this test only keeps a room from quietly growing back into a hall. It covers
corral's packages, not the tests, and not the protobuf code protoc generates.
A function's length runs from its ``def`` line to its last line, the
functions nested in it included.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("corral", "corralctl", "controlplane", "scheduler", "nodeagent")
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 80


def _generated(path: Path) -> bool:
    return path.name.endswith(("_pb2.py", "_pb2_grpc.py", "_pb2.pyi"))


def modules() -> list[Path]:
    found = []
    for package in PACKAGES:
        found += [p for p in (ROOT / package).rglob("*.py") if not _generated(p)]
    return sorted(found)


def long_modules(paths: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in paths:
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(root)}: {lines} lines")
    return found


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {lines} lines")
    return found


def test_the_measure_counts_a_long_function_and_a_long_module(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    source.write_text(f"def short() -> None:\n    pass\n\n\nasync def long() -> None:\n{body}\n")
    assert long_functions(source, tmp_path) == [f"sample.py:5 long: {MAX_FUNCTION_LINES + 1} lines"]
    assert long_modules([source], tmp_path) == []
    source.write_text("\n" * MAX_MODULE_LINES + "x = 1\n")
    assert long_modules([source], tmp_path) == [f"sample.py: {MAX_MODULE_LINES + 1} lines"]


def test_no_module_over_800_lines_and_no_function_over_80() -> None:
    paths = modules()
    offenders = long_modules(paths)
    for path in paths:
        offenders += long_functions(path)
    for offender in offenders:
        print("too long:", offender)
    assert not offenders, "\n".join(offenders)
