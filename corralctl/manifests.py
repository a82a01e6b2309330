"""Reading manifests for ``-f``: a file, a directory or ``-``, in JSON or YAML.

``kind: List`` (and ``v1 List``) is flattened into its items, and every
object remembers where it came from, so an error can say which file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


class ManifestError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Manifest:
    obj: dict[str, Any]
    source: str


def _parse(text: str, source: str) -> list[Any]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise ManifestError(f'error parsing "{source}": invalid JSON: {error}') from None
        return document if isinstance(document, list) else [document]
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise ManifestError(f'error parsing "{source}": invalid YAML: {error}') from None


def _flatten(document: Any, source: str) -> Iterator[Manifest]:
    if not isinstance(document, dict):
        raise ManifestError(f'error parsing "{source}": a manifest must be an object')
    kind = document.get("kind")
    if isinstance(kind, str) and (kind == "List" or kind.endswith("List")) and "items" in document:
        items = document.get("items")
        if not isinstance(items, list):
            raise ManifestError(f'error parsing "{source}": "items" must be a list')
        for item in items:
            yield from _flatten(item, source)
        return
    if not isinstance(document.get("kind"), str) or not isinstance(document.get("apiVersion"), str):
        raise ManifestError(
            f'error validating "{source}": every object needs apiVersion and kind set'
        )
    metadata = document.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ManifestError(f'error validating "{source}": metadata must be an object')
    if not isinstance((metadata or {}).get("name", ""), str):
        raise ManifestError(f'error validating "{source}": metadata.name must be a string')
    yield Manifest(document, source)


def _files(path: Path, recursive: bool) -> Iterable[Path]:
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        return sorted(
            p for p in path.glob(pattern) if p.suffix in MANIFEST_SUFFIXES and p.is_file()
        )
    return [path]


def load(sources: Iterable[str], *, recursive: bool = False) -> list[Manifest]:
    out: list[Manifest] = []
    for source in sources:
        if source == "-":
            out.extend(m for d in _parse(sys.stdin.read(), "STDIN") for m in _flatten(d, "STDIN"))
            continue
        path = Path(source)
        if not path.exists():
            raise ManifestError(f'the path "{source}" does not exist')
        for file in _files(path, recursive):
            try:
                text = file.read_text()
            except OSError as error:
                raise ManifestError(f'cannot read "{file}": {error.strerror}') from None
            out.extend(m for d in _parse(text, str(file)) for m in _flatten(d, str(file)))
    if not out:
        raise ManifestError("no objects passed to apply" if sources else "must specify -f")
    return out
