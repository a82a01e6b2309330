"""Write controlplane/apiserver/openapi_descriptions.json: Kubernetes 1.32's field descriptions.

    python tools/openapi_descriptions.py    (from the venv ./dev deps made; needs PyPI)

``kubectl explain`` prints the descriptions in the OpenAPI v3 schemas. Corral's
kinds are Kubernetes' kinds, so their types and fields are described as
Kubernetes 1.32 describes them. The words come from Kubernetes' own OpenAPI
definitions for 1.32, as the PyPI package kubernetes-validate 1.32.0 ships
them (kubernetes-json-schema/v1.32.0-local/_definitions.json); the wheel is
downloaded (pinned by sha256), read, and never installed. A corral schema
takes the descriptions of the Kubernetes type of the same name
(``DeploymentSpec`` is ``io.k8s.api.apps.v1.DeploymentSpec``), from the
first of PACKAGES that has one. Run it again after adding a kind or a field;
the API server reads the file once, as it builds its documents.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "controlplane" / "apiserver" / "openapi_descriptions.json"
WHEEL = "kubernetes-validate==1.32.0"
WHEEL_SHA256 = "0d5610622bd9c8fdea67f114faf4dc71fda755c9640e58a1ad9f4bc13c8b7751"
DEFINITIONS = "kubernetes_validate/kubernetes-json-schema/v1.32.0-local/_definitions.json"
# Where a name several API groups define is looked up first: the groups corral serves.
PACKAGES = (
    "io.k8s.api.core.v1",
    "io.k8s.apimachinery.pkg.apis.meta.v1",
    "io.k8s.api.apps.v1",
    "io.k8s.api.batch.v1",
    "io.k8s.api.rbac.v1",
    "io.k8s.api.policy.v1",
    "io.k8s.api.authentication.v1",
    "io.k8s.api.autoscaling.v1",
    "io.k8s.api.coordination.v1",
    "io.k8s.api.storage.v1",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1",
)
PIP_TIMEOUT_SECONDS = 600


def upstream_definitions() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="k8s-openapi-") as scratch:
        requirement = Path(scratch) / "requirements.txt"
        requirement.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes",
             "--only-binary", ":all:", "-d", scratch, "-r", str(requirement)],
            check=True,
            timeout=PIP_TIMEOUT_SECONDS,
        )  # fmt: skip
        (wheel,) = Path(scratch).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            document = json.loads(archive.read(DEFINITIONS))
    definitions: dict[str, Any] = document["$defs"]
    return definitions


def _by_short_name(definitions: dict[str, Any]) -> dict[str, Any]:
    """Each type's definition by its short name, the preferred package's winning a clash."""
    rank = {package: i for i, package in enumerate(PACKAGES)}
    chosen: dict[str, tuple[int, Any]] = {}
    for full_name, definition in definitions.items():
        package, _, short = full_name.rpartition(".")
        order = rank.get(package, len(PACKAGES))
        if short not in chosen or order < chosen[short][0]:
            chosen[short] = (order, definition)
    return {short: definition for short, (_, definition) in chosen.items()}


def descriptions(schema_names: list[str], definitions: dict[str, Any]) -> dict[str, Any]:
    by_name = _by_short_name(definitions)
    out: dict[str, Any] = {}
    for name in sorted(schema_names):
        definition = by_name.get(name)
        if definition is None:
            continue
        properties = {
            field: schema["description"]
            for field, schema in (definition.get("properties") or {}).items()
            if isinstance(schema, dict) and schema.get("description")
        }
        out[name] = {"description": definition.get("description", ""), "properties": properties}
    return out


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from controlplane.apiserver.openapi import model_schemas

    names = list(model_schemas())
    found = descriptions(names, upstream_definitions())
    OUTPUT.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    missing = sorted(set(names) - set(found))
    print(f"{OUTPUT.relative_to(ROOT)}: {len(found)} of {len(names)} described", file=sys.stderr)
    if missing:
        print(f"corral's own (no Kubernetes type so named): {', '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
