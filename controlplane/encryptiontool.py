"""``python -m controlplane encryption ...``: create and rotate the key file for data at rest.

Rotation follows Kubernetes: ``add-key`` puts a new first key in front of
the old ones, every API server is restarted with the file, ``rewrite``
re-encrypts every stored value with the new key, and only then may the
old key be removed from the file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import yaml

from controlplane.storage.encryption import (
    EncryptionConfigError,
    EtcdRewriteTarget,
    StorageCodec,
    add_key,
    load_config,
    new_config,
    reencrypt,
)
from controlplane.storage.etcd import EtcdClient, EtcdError
from corral.pki import write_private


def _new(args: argparse.Namespace) -> int:
    path = Path(args.out)
    if path.exists() and not args.force:
        print(f"{path} exists; pass --force to replace it (old data would be unreadable)",
              file=sys.stderr)  # fmt: skip
        return 1
    write_private(path, new_config(tuple(args.resource or ["secrets"])).encode())
    print(f"wrote {path}")
    return 0


def _add(args: argparse.Namespace) -> int:
    path = Path(args.config)
    try:
        document = yaml.safe_load(path.read_text())
        rotated = add_key(document, args.key_name)
    except (OSError, yaml.YAMLError, EncryptionConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_private(path, yaml.safe_dump(rotated, sort_keys=False).encode())
    print(f"{path}: {args.key_name!r} is now the key new writes use; restart every API server, "
          "then run `encryption rewrite`")  # fmt: skip
    return 0


async def _rewrite_all(args: argparse.Namespace) -> int:
    transformer = load_config(args.config)
    client = EtcdClient(args.etcd.split(","))
    try:
        report = await reencrypt(
            EtcdRewriteTarget(client),
            StorageCodec(transformer, args.etcd_prefix),
            sorted(transformer.resources),
            transformer=transformer,
        )
    finally:
        await client.close()
    print(f"scanned {report.scanned}, rewritten {report.rewritten}, "
          f"changed concurrently {report.raced}, unreadable {len(report.failed)}")  # fmt: skip
    for key in report.failed:
        print(f"  cannot decrypt {key}", file=sys.stderr)
    return 1 if report.failed else 0


def _rewrite(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_rewrite_all(args))
    except (EncryptionConfigError, EtcdError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane encryption")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new-config", help="write a key file with one fresh AES-GCM key")
    new.add_argument("--out", required=True)
    new.add_argument("--resource", action="append", help="resource to encrypt (default secrets)")
    new.add_argument("--force", action="store_true")
    new.set_defaults(run=_new)
    add = commands.add_parser("add-key", help="put a new key first; old keys still decrypt")
    add.add_argument("--config", required=True)
    add.add_argument("--key-name", required=True)
    add.set_defaults(run=_add)
    rewrite = commands.add_parser("rewrite", help="re-encrypt stored values with the first key")
    rewrite.add_argument("--config", required=True)
    rewrite.add_argument(
        "--etcd", default="http://127.0.0.1:2379", help="etcd URLs, comma-separated"
    )
    rewrite.add_argument("--etcd-prefix", default="/registry")
    rewrite.set_defaults(run=_rewrite)
    args = parser.parse_args(argv)
    return int(args.run(args))
