"""etcd's member API over TLS: how a master joins and leaves.

List, add, promote and remove members, and hand the leadership over
before a leader leaves.

Each call dials one endpoint after another until one answers, each within
``timeout``: the caller passes every member it knows of, and any live one
can change the membership (etcd forwards it to the leader).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from aetcd import rpc


class MemberError(Exception):
    pass


@dataclass(frozen=True)
class EtcdCredentials:
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]
    learner: bool = False

    @property
    def started(self) -> bool:
        # etcd names a member only once it has started and published itself.
        return bool(self.name)


def _member(raw: Any) -> Member:
    return Member(
        int(raw.ID), raw.name, list(raw.peerURLs), list(raw.clientURLs), bool(raw.isLearner)
    )


def _target(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.hostname}:{parts.port or 2379}"


async def _call(
    endpoints: Sequence[str],
    credentials: EtcdCredentials,
    method: str,
    request: Any,
    timeout: float,
    stub_type: Any = rpc.ClusterStub,
) -> Any:
    tls = grpc.ssl_channel_credentials(
        root_certificates=credentials.ca_file.read_bytes(),
        private_key=credentials.key_file.read_bytes(),
        certificate_chain=credentials.cert_file.read_bytes(),
    )
    failures = []
    for endpoint in endpoints:
        async with grpc.aio.secure_channel(_target(endpoint), tls) as channel:
            stub = stub_type(channel)
            try:
                return await getattr(stub, method)(request, timeout=timeout)
            except grpc.aio.AioRpcError as error:
                if error.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise MemberError(f"etcd {method} at {endpoint}: {error.details()}") from None
                failures.append(f"{endpoint}: {error.details() or error.code().name}")
    raise MemberError(f"no etcd member answered {method}: {'; '.join(failures) or 'none given'}")


async def list_members(
    endpoints: Sequence[str], credentials: EtcdCredentials, *, timeout: float = 5.0
) -> list[Member]:
    response = await _call(endpoints, credentials, "MemberList", rpc.MemberListRequest(), timeout)
    return [_member(m) for m in response.members]


async def add_member(
    endpoints: Sequence[str], credentials: EtcdCredentials, peer_url: str, *, timeout: float = 10.0
) -> tuple[Member, list[Member]]:
    """Add a learner at ``peer_url``: (it, every member now, it included).

    A learner does not vote, so adding it leaves the quorum as it was: a
    member that never starts cannot stop the cluster, as a voting one would
    (one of two up is no majority). ``promote_member`` makes it vote.
    """
    request = rpc.MemberAddRequest(peerURLs=[peer_url], isLearner=True)
    response = await _call(endpoints, credentials, "MemberAdd", request, timeout)
    return _member(response.member), [_member(m) for m in response.members]


async def remove_member(
    endpoints: Sequence[str],
    credentials: EtcdCredentials,
    member_id: int,
    *,
    timeout: float = 10.0,
    settle: float = 30.0,
) -> None:
    """Remove a member; waits up to ``settle`` seconds for the rest to look healthy to etcd.

    etcd refuses ("unhealthy cluster") while a remaining member has been
    connected for less than its health interval, as just after a restart.
    """
    request = rpc.MemberRemoveRequest(ID=member_id)
    deadline = time.monotonic() + settle
    delay = 0.5
    while True:
        try:
            await _call(endpoints, credentials, "MemberRemove", request, timeout)
            return
        except MemberError as error:
            if "unhealthy cluster" not in str(error) or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 4.0)


class NotInSync(MemberError):
    """The learner has not caught up with the leader's log yet."""


async def promote_member(
    endpoints: Sequence[str], credentials: EtcdCredentials, member_id: int, *, timeout: float = 10.0
) -> None:
    request = rpc.MemberPromoteRequest(ID=member_id)
    try:
        await _call(endpoints, credentials, "MemberPromote", request, timeout)
    except MemberError as error:
        if "in sync with leader" in str(error):
            raise NotInSync(str(error)) from None
        raise


async def healthy(endpoint: str, credentials: EtcdCredentials, *, timeout: float = 3.0) -> bool:
    """Whether the member serving ``endpoint`` answers a status request."""
    tls = grpc.ssl_channel_credentials(
        root_certificates=credentials.ca_file.read_bytes(),
        private_key=credentials.key_file.read_bytes(),
        certificate_chain=credentials.cert_file.read_bytes(),
    )
    async with grpc.aio.secure_channel(_target(endpoint), tls) as channel:
        try:
            await rpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
    return True


async def leader_id(
    endpoints: Sequence[str], credentials: EtcdCredentials, *, timeout: float = 5.0
) -> int:
    """The id of the member that leads, as the first member to answer sees it (0: none)."""
    response = await _call(
        endpoints, credentials, "Status", rpc.StatusRequest(), timeout, rpc.MaintenanceStub
    )
    return int(response.leader)


def transferee(leaving: Member, members: Sequence[Member], answering: set[int]) -> Member | None:
    """Whom a leaving leader hands the leadership to: a started voter that answers.

    etcd refuses a learner. The lowest id of those left, so that the choice
    does not depend on the order a listing came in.
    """
    fit = [
        m
        for m in members
        if m.id != leaving.id and m.started and not m.learner and m.id in answering
    ]
    return min(fit, key=lambda m: m.id, default=None)


async def move_leader(
    leader: Member, credentials: EtcdCredentials, target_id: int, *, timeout: float = 10.0
) -> None:
    """Make ``target_id`` lead (``etcdctl move-leader``); asked of the leader itself.

    A member that leaves while it leads leaves the rest without a leader
    until they notice (an election timeout) and elect one: writes stall
    that long. Handing over first costs a heartbeat or two instead.
    """
    request = rpc.MoveLeaderRequest(targetID=target_id)
    await _call(
        leader.client_urls, credentials, "MoveLeader", request, timeout, rpc.MaintenanceStub
    )


def initial_cluster(members: Sequence[Member], name: str, peer_url: str) -> str:
    """etcd's ``--initial-cluster`` for a new member: the others by name, itself by ``name``."""
    entries = []
    for member in members:
        if peer_url in member.peer_urls:
            entries.append(f"{name}={peer_url}")
        else:
            entries += [f"{member.name}={url}" for url in member.peer_urls]
    return ",".join(entries)
