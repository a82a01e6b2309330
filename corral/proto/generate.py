"""Regenerate the Python code for proto/ (``python -m corral.proto.generate``).

Two sets: corral's own agent protocol (proto/*.proto, with gRPC stubs), and
Kubernetes' object schemas (proto/k8s.io/..., upstream's generated.proto files
from k8s.io/api and k8s.io/apimachinery v0.32, unchanged) into corral/proto/k8s/,
which the API server uses to read protobuf request bodies (corral.k8sproto).
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


K8S_PREFIX = "k8s.io"


def generate_k8s(out_dir: Path) -> list[Path]:
    """Kubernetes' schemas: protoc names the modules after their import paths
    (k8s.io/api/core/v1 -> k8s/io/api/core/v1/generated_pb2.py), so their imports
    of each other are pointed into this package."""
    sources = sorted((PROTO_DIR / K8S_PREFIX).rglob("*.proto"))
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out_dir}",
            *map(str, sources),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with {code}")
    modules = sorted((out_dir / "k8s").rglob("generated_pb2.py"))
    for path in modules:
        text = path.read_text().replace("from k8s.io.", f"from {__package__}.k8s.io.")
        path.write_text(text)
    # Regular packages, so that setuptools' find (and wheels) include them.
    root = out_dir / "k8s"
    packages = {root} | {d for m in modules for d in m.parents if root in d.parents}
    for package in sorted(packages):
        (package / "__init__.py").touch()
    return modules + sorted(package / "__init__.py" for package in packages)


def main() -> int:
    written = generate(OUT_DIR) + generate_k8s(OUT_DIR)
    print("\n".join(str(p.relative_to(ROOT)) for p in written))
    return 0


def generated_matches() -> list[str]:
    """Names of generated files that differ from what the sources produce now."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        made = generate(out) + generate_k8s(out)
        fresh = {str(p.relative_to(out)): p.read_bytes() for p in made}
    stale = []
    for name, content in fresh.items():
        current = OUT_DIR / name
        if not current.exists() or current.read_bytes() != content:
            stale.append(name)
    return stale


if __name__ == "__main__":
    sys.exit(main())
