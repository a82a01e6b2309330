"""Regenerate the Python code for proto/*.proto (``python -m corral.proto.generate``).

The generated modules are committed; a test checks they match the sources.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
OUT_DIR = Path(__file__).resolve().parent


def generate(out_dir: Path) -> list[Path]:
    sources = sorted(PROTO_DIR.glob("*.proto"))
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            f"--pyi_out={out_dir}",
            *map(str, sources),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    written = sorted(out_dir.glob("*_pb2*.py*"))
    for path in written:
        if path.name.endswith("_grpc.py"):
            # protoc emits a top-level import; the modules live in a package.
            text = path.read_text()
            for source in sources:
                module = source.stem + "_pb2"
                text = text.replace(f"import {module} as", f"from corral.proto import {module} as")
            path.write_text(text)
    return written


def main() -> int:
    written = generate(OUT_DIR)
    print("\n".join(str(p.relative_to(ROOT)) for p in written))
    return 0


def generated_matches() -> list[str]:
    """Names of generated files that differ from what the sources produce now."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = {p.name: p.read_bytes() for p in generate(Path(scratch))}
    stale = []
    for name, content in fresh.items():
        current = OUT_DIR / name
        if not current.exists() or current.read_bytes() != content:
            stale.append(name)
    return stale


if __name__ == "__main__":
    sys.exit(main())
