"""Derive corral/proto/k8s/goshape.json from upstream's Go types (a developer tool).

A Kubernetes protobuf message does not say how its Go struct writes JSON, and
three things decide it: a field may be inlined into its parent (``json:",inline"``:
a Volume's VolumeSource), a non-pointer scalar is always on the wire even when
zero but JSON drops it under ``omitempty``, and a pointer (``*int32 replicas``)
keeps an explicit zero. The Go struct tags carry all three, so this reads them
once from the k8s.io/api and k8s.io/apimachinery sources proto/k8s.io/ came from:

    python -m corral.proto.goshape K8S_API_DIR K8S_APIMACHINERY_DIR

Only the exceptions to the common case (a value field with omitempty, JSON name
= proto name) are written, keyed by the message's full protobuf name.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "k8s" / "goshape.json"
API_GROUPS = (
    "core/v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "coordination/v1",
    "storage/v1",
    "rbac/v1",
    "authentication/v1",
    "autoscaling/v1",
)
MACHINERY = ("pkg/apis/meta/v1", "pkg/runtime", "pkg/api/resource", "pkg/util/intstr")

_STRUCT = re.compile(r"^type (\w+) struct \{")
_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?([\w.*\[\]]+)\s+`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')


def _field_shape(go_name: str | None, go_type: str, tags: dict[str, str]) -> tuple[str, str]:
    """(proto field name, flags) for one struct field; flags as in corral.api.protobuf."""
    proto = tags["protobuf"].split(",")
    named = [p[5:] for p in proto if p.startswith("name=")]
    base = go_name or go_type.lstrip("*").split(".")[-1]
    proto_name = named[0] if named else base[:1].lower() + base[1:]
    json_parts = tags.get("json", "").split(",")
    flags = []
    if "inline" in json_parts[1:]:
        flags.append("inline")
    elif json_parts[0] and json_parts[0] != proto_name:
        flags.append("json=" + json_parts[0])
    scalar = not go_type.startswith(("[]", "map[")) and "inline" not in flags
    if scalar and (go_type.startswith("*") or "omitempty" not in json_parts[1:]):
        flags.append("keepzero")
    return proto_name, ",".join(flags)


def shapes_of(source: Path, package: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    struct = None
    for line in source.read_text().splitlines():
        if opened := _STRUCT.match(line):
            struct = opened.group(1)
            continue
        if line.startswith("}"):
            struct = None
            continue
        field = _FIELD.match(line) if struct else None
        if field is None or 'protobuf:"' not in field.group(3):
            continue
        tags = dict(_TAG.findall(field.group(3)))
        proto_name, flags = _field_shape(field.group(1), field.group(2), tags)
        if flags:
            out.setdefault(f"{package}.{struct}", {})[proto_name] = flags
    return out


def build(api_dir: Path, machinery_dir: Path) -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    roots = [(api_dir / g, "k8s.io.api." + g.replace("/", ".")) for g in API_GROUPS]
    roots += [(machinery_dir / m, "k8s.io.apimachinery." + m.replace("/", ".")) for m in MACHINERY]
    for directory, package in roots:
        for source in sorted(directory.glob("*.go")):
            if not source.name.endswith("_test.go"):
                table.update(shapes_of(source, package))
    return dict(sorted(table.items()))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    table = build(Path(argv[0]), Path(argv[1]))
    OUT.write_text(json.dumps(table, indent=0, sort_keys=True) + "\n")
    print(f"{OUT}: {len(table)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
