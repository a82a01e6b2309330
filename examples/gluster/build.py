#!/usr/bin/env python3
"""Build the gluster.org web stack's images from Debian packages, with no registry.

    python examples/gluster/build.py [--docker-host URL] [--only NAME]...

Three kinds of layer, each an image of its own:

- ``base``: Debian bookworm, ``debootstrap --variant=minbase`` from the
  machine's own Debian mirror, trimmed and imported with ``docker import``;
- runtimes (``runtime-apache``, ``runtime-apache-php``, ``runtime-mariadb``,
  ``runtime-varnish``, ``runtime-perl``, ``runtime-python``): Debian packages
  installed on top of the base by ``docker build``;
- applications (``httpd``, ``sitebuilder``, ``mediawiki``, ``mariadb``,
  ``varnish``, ``awstats``): configuration and entrypoints, by ``docker build``.

Every layer is tagged ``corral.local/gluster/<name>:<content hash>``, the hash
of its build inputs (its directory here, and its parent's tag), so a build
with nothing changed only checks that the tags exist. The application images
are also tagged ``:1.0``, the tag ``examples/gluster.json`` uses, which always
points at the newest build.

Package installs use ``docker build --network host``: a dockerd of corral's
own has no bridge, and the host reaches the mirror.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from corralctl import dockerd as dockerd_process  # noqa: E402

REPOSITORY = "corral.local/gluster"
STABLE_TAG = "1.0"
SUITE = "bookworm"
SYSTEM_DOCKER = "unix:///var/run/docker.sock"
DEFAULT_CACHE = Path(os.environ.get("CORRAL_IMAGE_CACHE", "/var/cache/corral/images"))
PRIVATE_DOCKER_ROOT = Path("/var/lib/corral/image-build/docker")
# Bump to rebuild every layer, whatever its inputs say.
RECIPE = "1"
LABEL_INPUTS = "org.corral.gluster.inputs"


@dataclass(frozen=True)
class Layer:
    name: str
    directory: str
    parent: str | None
    app: bool = False


LAYERS: tuple[Layer, ...] = (
    Layer("base", "base", None),
    Layer("runtime-apache", "runtime/apache", "base"),
    Layer("runtime-apache-php", "runtime/apache-php", "runtime-apache"),
    Layer("runtime-mariadb", "runtime/mariadb", "base"),
    Layer("runtime-varnish", "runtime/varnish", "base"),
    Layer("runtime-perl", "runtime/perl", "base"),
    Layer("runtime-python", "runtime/python", "base"),
    Layer("httpd", "images/httpd", "runtime-apache", app=True),
    Layer("sitebuilder", "images/sitebuilder", "runtime-python", app=True),
    Layer("mediawiki", "images/mediawiki", "runtime-apache-php", app=True),
    Layer("mariadb", "images/mariadb", "runtime-mariadb", app=True),
    Layer("varnish", "images/varnish", "runtime-varnish", app=True),
    Layer("awstats", "images/awstats", "runtime-perl", app=True),
)
BY_NAME = {layer.name: layer for layer in LAYERS}
APPS = tuple(layer.name for layer in LAYERS if layer.app)


class BuildError(Exception):
    pass


# --- progress ---------------------------------------------------------------------------

_started = time.monotonic()
_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:
        print(f"[{time.monotonic() - _started:6.1f}s] {message}", flush=True)


# --- the Debian mirror ------------------------------------------------------------------


@dataclass(frozen=True)
class Mirror:
    debian: str
    security: str
    apt_options: tuple[tuple[str, str], ...]

    def sources(self) -> str:
        """The image's /etc/apt/sources.list.d/debian.sources."""
        return (
            "Types: deb\n"
            f"URIs: {self.debian}\n"
            f"Suites: {SUITE} {SUITE}-updates\n"
            "Components: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            "\n"
            "Types: deb\n"
            f"URIs: {self.security}\n"
            f"Suites: {SUITE}-security\n"
            "Components: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )

    def apt_conf(self) -> str:
        lines = ["// The build machine's settings for its Debian mirror."]
        lines += [f'{key} "{value}";' for key, value in self.apt_options]
        return "\n".join(lines) + "\n"


def _source_entries() -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every ``deb`` entry of this machine's apt sources."""
    paths = [Path("/etc/apt/sources.list")]
    directory = Path("/etc/apt/sources.list.d")
    if directory.is_dir():
        paths += sorted(directory.iterdir())
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    yield uri, fields.get("suites", "").split()
        elif path.name == "sources.list" or path.suffix == ".list":
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    yield words[1], [words[2]]


def detect_mirror(debian: str | None, security: str | None) -> Mirror:
    """This machine's Debian mirror (from its apt sources), unless given."""
    for uri, suites in _source_entries():
        plain = not any(s.endswith("-security") for s in suites)
        if debian is None and plain and any(s.split("-")[0] in (SUITE, "stable") for s in suites):
            debian = uri
        if security is None and any(s.endswith("-security") for s in suites):
            security = uri
    debian = (debian or "http://deb.debian.org/debian").rstrip("/")
    security = (security or "http://deb.debian.org/debian-security").rstrip("/")
    # Mirrors that serve snapshots need these, and the images need what the host needs.
    options: list[tuple[str, str]] = []
    for key in ("Acquire::Check-Valid-Until", "Acquire::Check-Date"):
        found = subprocess.run(
            ["apt-config", "dump", key], capture_output=True, text=True, check=False
        ).stdout
        match = re.search(rf'^{re.escape(key)} "([^"]*)";', found, re.MULTILINE)
        if match:
            options.append((key, match.group(1)))
    return Mirror(debian, security, tuple(options))


# --- content hashes ---------------------------------------------------------------------


def directory_digest(directory: Path) -> str:
    """A hash of every file under ``directory``: path, executable bit and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(directory).as_posix()
        if "__pycache__" in relative:
            continue
        if path.is_symlink():
            content = f"-> {os.readlink(path)}".encode()
            mode = "l"
        else:
            content = path.read_bytes()
            mode = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{relative}\0{mode}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def layer_hashes(mirror: Mirror) -> dict[str, str]:
    """Each layer's content tag: its inputs plus its parent's tag."""
    tags: dict[str, str] = {}
    for layer in LAYERS:
        digest = hashlib.sha256(f"recipe {RECIPE}\n".encode())
        digest.update(directory_digest(HERE / layer.directory).encode())
        if layer.parent is None:
            digest.update(f"debootstrap {SUITE} minbase\n{mirror!r}\n".encode())
        else:
            digest.update(f"FROM {ref(layer.parent, tags[layer.parent])}\n".encode())
        tags[layer.name] = digest.hexdigest()[:12]
    return tags


def ref(name: str, tag: str) -> str:
    return f"{REPOSITORY}/{name}:{tag}"


# --- Docker -----------------------------------------------------------------------------


@dataclass
class Docker:
    host: str
    private: dockerd_process.Dockerd | None = None
    _local: threading.local = field(default_factory=threading.local)
    _clients: list[docker.APIClient] = field(default_factory=list)

    def client(self) -> docker.APIClient:
        """This thread's client: the builds run side by side."""
        found: docker.APIClient | None = getattr(self._local, "client", None)
        if found is None:
            found = docker.APIClient(base_url=self.host, timeout=600)
            self._local.client = found
            self._clients.append(found)
        return found

    def close(self) -> None:
        for client in self._clients:
            client.close()
        if self.private is not None:
            say(f"stopping the private dockerd (its images stay in {self.private.root})")
            dockerd_process.stop(self.private, clean=False)
            # dockerd also leaves its default network namespace mounted.
            if self.private.root is not None:
                netns = self.private.root / "exec" / "netns" / "default"
                subprocess.run(["umount", str(netns)], capture_output=True, check=False)


def connect(host: str | None) -> Docker:
    if host:
        return Docker(host)
    if os.environ.get("DOCKER_HOST"):
        return Docker(os.environ["DOCKER_HOST"])
    if dockerd_process.responds(Path(SYSTEM_DOCKER.removeprefix("unix://"))):
        return Docker(SYSTEM_DOCKER)
    private_socket = dockerd_process.short_root(PRIVATE_DOCKER_ROOT) / "docker.sock"
    if dockerd_process.responds(private_socket):
        say(f"using the private dockerd that is already running at unix://{private_socket}")
        return Docker(f"unix://{private_socket}")
    say(
        f"no Docker answers at {SYSTEM_DOCKER}: starting a private dockerd "
        f"(data in {PRIVATE_DOCKER_ROOT}); pass --docker-host to build into another"
    )
    PRIVATE_DOCKER_ROOT.mkdir(parents=True, exist_ok=True)
    daemon = dockerd_process.start(PRIVATE_DOCKER_ROOT)
    say(f"private dockerd at {daemon.host}")
    return Docker(daemon.host, daemon)


def image_id(client: docker.APIClient, image: str) -> str | None:
    try:
        return str(client.inspect_image(image)["Id"])
    except docker.errors.ImageNotFound:
        return None


# --- the base layer: debootstrap, trimmed, imported ---------------------------------------


def ensure_debootstrap() -> None:
    if shutil.which("debootstrap"):
        return
    if os.geteuid() != 0:
        raise BuildError("debootstrap is not installed: apt-get install debootstrap")
    say("installing debootstrap (apt-get install debootstrap)")
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdout=subprocess.DEVNULL,
    )


def _trim_rootfs(root: Path, mirror: Mirror) -> None:
    base = HERE / "base"
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(mirror.sources())
    (root / "etc/apt/apt.conf.d/90corral").write_text((base / "apt.conf").read_text())
    (root / "etc/apt/apt.conf.d/91corral-mirror").write_text(mirror.apt_conf())
    (root / "etc/dpkg/dpkg.cfg.d/90corral").write_text((base / "dpkg.cfg").read_text())
    shutil.copy2(base / "policy-rc.d", root / "usr/sbin/policy-rc.d")
    # What the dpkg excludes keep out of later layers, out of this one too.
    for pattern in ("usr/share/man/*", "usr/share/info/*", "usr/share/lintian/*"):
        for path in root.glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for path in (root / "usr/share/locale").glob("*"):
        if path.name != "locale.alias":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in (root / "usr/share/doc").glob("*/*"):
        if path.name != "copyright":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for directory in ("var/cache/apt", "var/lib/apt/lists", "var/log", "tmp", "var/tmp"):
        for path in (root / directory).rglob("*"):
            if path.is_file() or path.is_symlink():
                if directory == "var/log":
                    path.write_bytes(b"") if path.is_file() and not path.is_symlink() else None
                else:
                    path.unlink()
    (root / "etc/machine-id").write_text("")
    for name in ("etc/hostname", "etc/resolv.conf"):
        (root / name).unlink(missing_ok=True)


def base_tarball(cache: Path, tag: str, mirror: Mirror) -> Path:
    """The trimmed minbase root filesystem as a tar, cached by content."""
    tarball = cache / f"base-{SUITE}-{tag}.tar"
    if tarball.exists():
        say(f"base: reusing {tarball}")
        return tarball
    ensure_debootstrap()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="base-", dir=cache))
    root = work / "root"
    try:
        say(f"base: debootstrap --variant=minbase {SUITE} from {mirror.debian} (about a minute)")
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(root), mirror.debian],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-3000:]
            log = root / "debootstrap/debootstrap.log"
            if log.exists():
                tail += "\n" + log.read_text(errors="replace")[-3000:]
            raise BuildError(f"base: debootstrap failed:\n{tail}")
        _trim_rootfs(root, mirror)
        partial = work / "rootfs.tar"
        subprocess.run(
            [
                "tar", "--numeric-owner", "--xattrs", "--sort=name",
                "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
                "-C", str(root), "-cf", str(partial), ".",
            ],
            check=True,
        )  # fmt: skip
        partial.rename(tarball)
    finally:
        subprocess.run(["umount", "-R", str(root / "proc")], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)
    # Keep only this one: an older base is rebuilt from the mirror if ever needed.
    for old in cache.glob(f"base-{SUITE}-*.tar"):
        if old != tarball:
            old.unlink(missing_ok=True)
    say(f"base: root filesystem in {tarball} ({tarball.stat().st_size / 2**20:.0f} MiB)")
    return tarball


def build_base(docker_: Docker, tag: str, mirror: Mirror, cache: Path) -> None:
    tarball = base_tarball(cache, tag, mirror)
    say("base: docker import")
    client = docker_.client()
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
        f"LABEL {LABEL_INPUTS}={tag}",
    ]
    with tarball.open("rb") as data:
        client.import_image(src=data, repository=f"{REPOSITORY}/base", tag=tag, changes=changes)
    if image_id(client, ref("base", tag)) is None:
        raise BuildError("base: docker import did not produce the base image")


# --- Dockerfile layers --------------------------------------------------------------------


def build_dockerfile(docker_: Docker, layer: Layer, tags: dict[str, str], logs: Path) -> None:
    assert layer.parent is not None
    client = docker_.client()
    target = ref(layer.name, tags[layer.name])
    parent = ref(layer.parent, tags[layer.parent])
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{layer.name}.log"
    lines: list[str] = []
    with log_path.open("w") as log:
        stream = client.build(
            path=str(HERE / layer.directory),
            tag=target,
            buildargs={"BASE": parent},
            network_mode="host",
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            labels={LABEL_INPUTS: tags[layer.name]},
        )
        for chunk in stream:
            if "error" in chunk:
                log.write(str(chunk["error"]) + "\n")
                tail = "".join(lines[-40:])
                raise BuildError(f"{layer.name}: {chunk['error']}\n{tail}(log: {log_path})")
            text = chunk.get("stream")
            if not text:
                continue
            log.write(text)
            lines.append(text)
            if text.startswith("Step "):
                say(f"{layer.name}: {text.strip()[:110]}")
    if image_id(client, target) is None:
        raise BuildError(f"{layer.name}: the build finished without {target} (log: {log_path})")


# --- saved image sets: reuse across Docker daemons ------------------------------------------


def saved_sets(cache: Path) -> Iterator[tuple[Path, set[str]]]:
    for index in sorted(cache.glob("images-*.json")):
        tar = index.with_suffix(".tar")
        if tar.exists():
            with contextlib.suppress(ValueError, OSError):
                yield tar, set(json.loads(index.read_text())["refs"])


def load_saved(docker_: Docker, cache: Path, wanted: list[str]) -> set[str]:
    """Load missing layers from a ``docker save`` of an earlier build; return the refs loaded.

    The saved set with the most of them is loaded, even if it has only some: an
    application layer that changed is then built on the loaded runtime layers.
    """
    client = docker_.client()
    missing = {r for r in wanted if image_id(client, r) is None}
    best = max(saved_sets(cache), key=lambda saved: len(saved[1] & missing), default=None)
    if not missing or best is None or not best[1] & missing:
        return set()
    tar, refs = best
    say(f"loading {len(refs)} saved layers from {tar} ({tar.stat().st_size >> 20} MiB)")
    with tar.open("rb") as data:
        for _ in client.load_image(data):
            pass
    return refs & missing


def saved_set_path(cache: Path, refs: list[str]) -> Path:
    key = hashlib.sha256("\n".join(sorted(refs)).encode()).hexdigest()[:12]
    return cache / f"images-{key}.tar"


def set_refs(tags: dict[str, str]) -> list[str]:
    """What a saved set holds: every layer, and the stable tags gluster.json runs."""
    layers = [ref(layer.name, tags[layer.name]) for layer in LAYERS]
    return layers + [ref(name, STABLE_TAG) for name in APPS]


def save_set(docker_: Docker, cache: Path, refs: list[str]) -> None:
    """One ``docker save`` of every layer (shared layers stored once), for other daemons."""
    tar = saved_set_path(cache, refs)
    index = tar.with_suffix(".json")
    if tar.exists() and index.exists():
        return
    say(f"saving the images to {tar}, for reuse by other Docker daemons")
    cache.mkdir(parents=True, exist_ok=True)
    partial = tar.with_suffix(".partial")
    client = docker_.client()
    # The SDK's get_image saves one image; the API saves several at once.
    response = client._get(client._url("/images/get"), params={"names": refs}, stream=True)
    client._raise_for_status(response)
    with partial.open("wb") as out:
        for chunk in response.iter_content(chunk_size=1 << 20):
            out.write(chunk)
    partial.rename(tar)
    index.write_text(json.dumps({"refs": sorted(refs)}, indent=1) + "\n")
    for old_tar, _ in list(saved_sets(cache)):
        if old_tar != tar:
            old_tar.unlink(missing_ok=True)
            old_tar.with_suffix(".json").unlink(missing_ok=True)
    say(f"saved ({tar.stat().st_size >> 20} MiB)")


# --- the build ------------------------------------------------------------------------------


@dataclass
class Plan:
    tags: dict[str, str]
    layers: list[Layer]
    built: list[str] = field(default_factory=list)


# Rough build costs, in tens of seconds: what the scheduler puts first.
COST = {"base": 5, "runtime-apache": 4, "runtime-apache-php": 5, "mediawiki": 4}


def chain_weight(name: str) -> int:
    """The cost of a layer and of the costliest chain of layers built on it."""
    children = [layer.name for layer in LAYERS if layer.parent == name]
    return COST.get(name, 2) + max((chain_weight(child) for child in children), default=0)


def needed_layers(only: list[str]) -> list[Layer]:
    names: set[str] = set()
    for name in only or APPS:
        layer: Layer | None = BY_NAME[name]
        while layer is not None:
            names.add(layer.name)
            layer = BY_NAME[layer.parent] if layer.parent else None
    return [layer for layer in LAYERS if layer.name in names]


def build(
    docker_: Docker,
    only: list[str],
    cache: Path,
    *,
    jobs: int = 3,
    save: bool = True,
    mirror: Mirror | None = None,
) -> dict[str, str]:
    """Build what is missing; return each application image's content-tagged ref."""
    mirror = mirror or detect_mirror(None, None)
    tags = layer_hashes(mirror)
    plan = Plan(tags, needed_layers(only))
    client = docker_.client()
    wanted = [ref(layer.name, tags[layer.name]) for layer in plan.layers]
    targets = [BY_NAME[name] for name in only] if only else [BY_NAME[name] for name in APPS]
    apps = [layer for layer in targets if layer.app]

    # A target that is present needs none of its parents.
    present = {
        layer.name for layer in plan.layers if image_id(client, ref(layer.name, tags[layer.name]))
    }
    if not all(layer.name in present for layer in targets):
        loaded = load_saved(docker_, cache, [ref(t.name, tags[t.name]) for t in plan.layers])
        present |= {
            layer.name for layer in plan.layers if ref(layer.name, tags[layer.name]) in loaded
        }

    def wanted_names() -> set[str]:
        # Layers to build: missing ones that a missing target needs.
        names: set[str] = set()
        for target in targets:
            layer: Layer | None = target
            while layer is not None and layer.name not in present:
                names.add(layer.name)
                layer = BY_NAME[layer.parent] if layer.parent else None
        return names

    to_build = wanted_names()
    for layer in plan.layers:
        state = "build" if layer.name in to_build else "present"
        say(f"{ref(layer.name, tags[layer.name]):58} {state}")

    logs = cache / "logs"
    done = set(present)
    running: dict[Future[None], Layer] = {}
    failures: list[str] = []
    jobs = max(1, jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        # The longest chain first: MediaWiki's three layers decide the total.
        pending = sorted(
            (layer for layer in plan.layers if layer.name in to_build),
            key=lambda layer: -chain_weight(layer.name),
        )
        while pending or running:
            if failures:
                pending.clear()
            for layer in list(pending):
                if len(running) >= jobs:
                    break
                if layer.parent is None or layer.parent in done:
                    pending.remove(layer)
                    say(f"{layer.name}: building {ref(layer.name, tags[layer.name])}")
                    if layer.parent is None:
                        future = pool.submit(build_base, docker_, tags[layer.name], mirror, cache)
                    else:
                        future = pool.submit(build_dockerfile, docker_, layer, tags, logs)
                    running[future] = layer
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                layer = running.pop(future)
                try:
                    future.result()
                except BuildError as error:
                    failures.append(str(error))
                    say(f"{layer.name}: FAILED")
                    continue
                except Exception as error:
                    failures.append(f"{layer.name}: {error}")
                    say(f"{layer.name}: FAILED")
                    continue
                done.add(layer.name)
                plan.built.append(layer.name)
                say(f"{layer.name}: built")
    if failures:
        raise BuildError("\n".join(failures))

    out: dict[str, str] = {}
    for layer in apps:
        target = ref(layer.name, tags[layer.name])
        stable = ref(layer.name, STABLE_TAG)
        if image_id(client, stable) != image_id(client, target):
            client.tag(target, f"{REPOSITORY}/{layer.name}", STABLE_TAG, force=True)
            say(f"{stable} -> {tags[layer.name]}")
        out[layer.name] = target
    # With the stable tags, a daemon that loads the set (corral up --load-images)
    # runs gluster.json as it is; save_set skips a set that exists.
    if save and not only and all(image_id(client, r) is not None for r in wanted):
        save_set(docker_, cache, set_refs(tags))
    return out


def image_sizes(docker_: Docker, refs: dict[str, str]) -> dict[str, int]:
    client = docker_.client()
    return {name: int(client.inspect_image(r)["Size"]) for name, r in refs.items()}


def prune(docker_: Docker, tags: dict[str, str]) -> None:
    """Remove every content tag but the current one of each layer."""
    client = docker_.client()
    for image in client.images(name=f"{REPOSITORY}/*"):
        for tagged in image.get("RepoTags") or []:
            repository, _, tag = tagged.rpartition(":")
            name = repository.removeprefix(f"{REPOSITORY}/")
            if name in tags and tag not in (tags[name], STABLE_TAG):
                say(f"removing {tagged}")
                with contextlib.suppress(docker.errors.APIError):
                    client.remove_image(tagged)
    reclaimed = client.prune_images(filters={"dangling": True}).get("SpaceReclaimed") or 0
    say(f"pruned untagged layers: {reclaimed / 1e6:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docker-host", help=f"Docker to build into (default: {SYSTEM_DOCKER})")
    parser.add_argument(
        "--only", action="append", default=[], choices=list(BY_NAME), metavar="NAME",
        help=f"build only this image and its layers (repeatable): {', '.join(APPS)}, "
        "or a base or runtime layer",
    )  # fmt: skip
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--jobs", type=int, default=3, help="layers built side by side")
    parser.add_argument("--mirror", help="Debian mirror (default: this machine's)")
    parser.add_argument("--security-mirror", help="Debian security mirror")
    parser.add_argument(
        "--no-save", action="store_true",
        help="do not docker-save the finished images into the cache dir",
    )  # fmt: skip
    parser.add_argument("--prune", action="store_true", help="remove older content tags")
    parser.add_argument("--print-tags", action="store_true", help="print the tags and exit")
    parser.add_argument(
        "--print-archive", action="store_true",
        help="print the saved set of the current images (for docker load) and exit; "
        "exit 1 if there is none yet",
    )  # fmt: skip
    args = parser.parse_args(argv)

    mirror = detect_mirror(args.mirror, args.security_mirror)
    if args.print_tags:
        tags = layer_hashes(mirror)
        for layer in needed_layers(args.only):
            print(ref(layer.name, tags[layer.name]))
        return 0
    if args.print_archive:
        archive = saved_set_path(args.cache_dir, set_refs(layer_hashes(mirror)))
        if not archive.exists():
            print(f"no saved set {archive}: run the build first", file=sys.stderr)
            return 1
        print(archive)
        return 0
    docker_ = connect(args.docker_host)
    try:
        say(f"docker {docker_.host}; Debian mirror {mirror.debian}")
        refs = build(
            docker_, args.only, args.cache_dir, jobs=args.jobs, save=not args.no_save, mirror=mirror
        )
        if args.prune:
            prune(docker_, layer_hashes(mirror))
        for name, size in image_sizes(docker_, refs).items():
            say(f"{refs[name]:58} {size / 1e6:6.0f} MB")
    except BuildError as error:
        say(f"build failed: {error}")
        return 1
    finally:
        docker_.close()
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
