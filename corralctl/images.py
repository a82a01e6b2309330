"""``corral up --load-images``: ``docker load`` an archive into the nodes' Docker."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from corralctl import processes


def _archive_tags(archive: Path) -> list[str]:
    """The image names a ``docker save`` archive holds."""
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile("manifest.json")
            entries = json.loads(member.read()) if member is not None else []
    except (OSError, KeyError, ValueError, tarfile.TarError) as error:
        raise processes.ProcessError(
            f"--load-images {archive}: not an image archive ({error})"
        ) from None
    return [tag for entry in entries for tag in entry.get("RepoTags") or []]


def load_images(docker_host: str, archive: Path) -> None:
    """``docker load`` the archive unless every image in it is there already."""
    started = time.monotonic()
    tags = _archive_tags(archive)
    client = docker.APIClient(base_url=docker_host, timeout=900)
    try:
        missing = []
        for tag in tags:
            try:
                client.inspect_image(tag)
            except docker.errors.ImageNotFound:
                missing.append(tag)
        if tags and not missing:
            print(f"images        {archive}: its {len(tags)} images are in Docker already")
            return
        size = archive.stat().st_size >> 20
        print(f"images        loading {archive} ({size} MiB, {len(tags)} images)...", flush=True)
        with archive.open("rb") as data:
            for message in client.load_image(data):
                if isinstance(message, dict) and message.get("error"):
                    raise processes.ProcessError(f"docker load {archive}: {message['error']}")
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        raise processes.ProcessError(f"docker load {archive}: {error}") from None
    finally:
        client.close()
    print(f"images        loaded {archive} in {time.monotonic() - started:.1f}s")
