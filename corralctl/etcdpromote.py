"""``corral etcd-promote``: make this master's etcd learner a voting member once it caught up.

A joining master's member starts as a learner (``etcdmembers.add_member``).
Its etcd unit runs this after etcd starts: it asks for the promotion until
etcd says the learner is in sync, within a bound, and does nothing for a
member that votes already.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

from corralctl import etcdmembers
from corralctl.context import CliContext
from corralctl.etcdmembers import EtcdCredentials, MemberError, NotInSync
from corralctl.etcdpki import EtcdPki
from corralctl.masterjoin import MasterRecord


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    promote = sub.add_parser(
        "etcd-promote", help="make this master's etcd learner a voting member, once in sync"
    )
    promote.add_argument("--etc-dir", default="/etc/corral")
    promote.add_argument(
        "--timeout", type=float, default=80.0, help="give up after this many seconds"
    )
    promote.set_defaults(func=run_promote, needs_server=False)


def credentials(pki_dir: Path) -> EtcdCredentials:
    etcd = EtcdPki(pki_dir)
    return EtcdCredentials(etcd.ca_cert, etcd.apiserver_client_cert, etcd.apiserver_client_key)


async def promote(etc_dir: Path, timeout: float) -> str:
    """What happened; raises MemberError when it could not be done within ``timeout``."""
    record = MasterRecord.read(etc_dir)
    if record is None:
        raise MemberError(f"{etc_dir}/master.json is missing: not an installed master")
    creds = credentials(etc_dir / "pki")
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            members = await etcdmembers.list_members(record.etcd_endpoints, creds)
            me = next((m for m in members if record.etcd_peer_url in m.peer_urls), None)
            if me is None:
                raise MemberError(f"no etcd member has the peer URL {record.etcd_peer_url}")
            if not me.learner:
                return f"etcd member {me.name} ({me.id:x}) votes"
            await etcdmembers.promote_member(record.etcd_endpoints, creds, me.id)
            return f"promoted etcd member {me.name} ({me.id:x}) to a voting member"
        except NotInSync as error:
            last = str(error)
        except MemberError as error:
            # etcd itself may not be up yet, just after its start.
            if "no etcd member answered" not in str(error):
                raise
            last = str(error)
        if time.monotonic() + delay > deadline:
            raise MemberError(f"gave up after {timeout:.0f}s: {last}")
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 5.0)


async def run_promote(ctx: CliContext, args: argparse.Namespace) -> int:
    del ctx
    try:
        print(await promote(Path(args.etc_dir), args.timeout))
    except (MemberError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
