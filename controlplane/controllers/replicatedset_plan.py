"""Who should be a replicated set's primary: the decision, apart from any I/O.

The controller gathers what it knows of each pod (a ``Member``) and the
current election (``Election``, kept in a Lease), and ``plan`` answers what to
change. The rules, and why they keep one writer, are in docs/replication.md;
in short:

- a replica is a *candidate* only if its agent has converged to the current
  election (``report.epoch``): it follows the current primary, so its
  position is comparable, and a copy that diverged (an old primary that came
  back) never qualifies;
- a primary whose node is silent for the whole lease, or whose pod is gone,
  or which has been down for a whole lease, is replaced by the candidate
  with the largest position, at once: its agent fenced it half a lease ago;
- a primary asked to hand over (a drain, a rolling update, a deletion) is
  first demoted, and only once it reports itself read-only, and a candidate
  has caught up with its last position, is the candidate elected;
- a primary that is alive but not writable in the current election (fenced
  while cut off, or its promote failed) is elected anew, with the others,
  by position; the new election number is what lets its agent promote again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from corral import replication as r
from corral.replication import Assignment, Hooks, Report


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    uid: str
    ip: str
    node: str
    # The node was heard from within the lease (as this controller observed it).
    alive: bool
    terminating: bool
    # Its containers run (phase Running); a pod still being created is not.
    running: bool
    report: Report | None
    assignment: Assignment
    role_label: str | None = None


@dataclass(frozen=True, slots=True)
class Election:
    primary: str = ""
    uid: str = ""
    epoch: int = 0
    # A switchover's election: the new primary is labelled once writable.
    planned: bool = False


@dataclass
class Plan:
    """What to change; ``elect`` first (in the Lease), then the pods."""

    elect: Member | None = None
    # The election is a planned switchover (not a failover).
    planned: bool = False
    demote: str | None = None
    reason: str = ""
    # Pods whose annotations or role label must change: name -> merge patch.
    patches: dict[str, dict[str, object]] = field(default_factory=dict)
    # Look again this soon even if nothing changes (a lease running out).
    recheck_after: float | None = None


_ORDINAL = re.compile(r"-(\d+)$")


def ordinal(name: str) -> tuple[int, str]:
    """Sort key: StatefulSet ordinals numerically, then names."""
    found = _ORDINAL.search(name)
    return (int(found.group(1)) if found else 1 << 30, name)


def _rank(member: Member) -> tuple[tuple[int, ...], int]:
    position = member.report.position if member.report else ()
    # Larger position first; among equals the lower ordinal.
    return position, -ordinal(member.name)[0]


def candidates(members: list[Member], election: Election, exclude: str = "") -> list[Member]:
    return [
        m
        for m in members
        if m.name != exclude
        and m.alive
        and m.running
        and not m.terminating
        and m.report is not None
        and m.report.role == "replica"
        and m.report.epoch == election.epoch
    ]


def best(members: list[Member]) -> Member | None:
    return max(members, key=_rank) if members else None


@dataclass(frozen=True, slots=True)
class Timers:
    """How long the controller has seen each pod in a state, in seconds."""

    unhealthy: dict[str, float] = field(default_factory=dict)
    not_converged: dict[str, float] = field(default_factory=dict)
    # A primary asked to hand over: how long it has been without its label.
    unlabelled: dict[str, float] = field(default_factory=dict)


def _bootstrap(members: list[Member]) -> tuple[Member | None, str]:
    live = [m for m in members if m.alive and m.running and not m.terminating]
    if not live:
        return None, "waiting for a running pod"
    silent = [m.name for m in live if m.report is None or m.report.role == "unknown"]
    if silent:
        # Electing before every live pod has said what it holds could pick an
        # empty copy over one with data.
        return None, f"waiting for {', '.join(sorted(silent))} to report"
    chosen = max(
        live,
        key=lambda m: (
            m.report is not None and m.report.role == "primary",
            m.report.position if m.report else (),
            -ordinal(m.name)[0],
        ),
    )
    return chosen, "first election"


def plan(members: list[Member], election: Election, hooks: Hooks, timers: Timers) -> Plan:
    """The next step for one replicated set."""
    result = Plan()
    by_name = {m.name: m for m in members}
    primary = by_name.get(election.primary)
    if primary is not None and election.uid and primary.uid != election.uid:
        # The same name on a new pod (a StatefulSet replaced it): not the
        # pod that was elected, and it holds none of its data.
        primary = None
    lease = hooks.lease_seconds
    if election.epoch == 0:
        result.elect, result.reason = _bootstrap(members)
    elif primary is None:
        result.elect = best(candidates(members, election))
        result.reason = f"primary {election.primary} is gone"
    elif not primary.alive:
        result.elect = best(candidates(members, election, exclude=primary.name))
        result.reason = f"primary {primary.name}'s node {primary.node} is silent"
    elif timers.unhealthy.get(primary.name, 0.0) >= lease:
        result.elect = best(candidates(members, election, exclude=primary.name))
        result.reason = f"primary {primary.name} has been down for {lease:g}s"
    elif primary.terminating or primary.assignment.switchover:
        successor = best(candidates(members, election, exclude=primary.name))
        if successor is None:
            result.reason = f"primary {primary.name} should hand over, but no replica is ready"
        elif not primary.assignment.demote and (
            primary.role_label == "primary"
            or timers.unlabelled.get(primary.name, 0.0) < hooks.period_seconds
        ):
            # First the Service stops sending to it; only then does it stop
            # taking writes, so clients never meet a read-only primary (some,
            # such as MediaWiki, would then refuse writes for seconds more).
            result.reason = f"switchover: routing away from {primary.name} before it demotes"
            result.recheck_after = hooks.period_seconds / 4
        elif not primary.assignment.demote or not (
            primary.report is not None and not primary.report.writable
        ):
            result.demote = primary.name
            result.reason = f"switchover: demoting {primary.name}"
        elif primary.report is not None and successor.report is not None:
            if successor.report.position >= primary.report.position:
                result.elect = successor
                result.planned = True
                result.reason = f"switchover from {primary.name}"
            else:
                result.demote = primary.name
                result.reason = f"switchover: waiting for {successor.name} to catch up"
                result.recheck_after = hooks.period_seconds
    elif timers.not_converged.get(primary.name, 0.0) >= hooks.hook_timeout_seconds:
        pool = candidates(members, election, exclude=primary.name)
        if primary.running and primary.report is not None and primary.report.role != "empty":
            pool.append(primary)
        result.elect = best(pool)
        result.reason = f"primary {primary.name} is not writable in election {election.epoch}"
    if result.elect is not None:
        new = Election(result.elect.name, result.elect.uid, election.epoch + 1, result.planned)
        result.demote = None
    else:
        new = election
    result.patches = _pod_patches(members, new, by_name, result.demote, hooks)
    if result.recheck_after is None:
        result.recheck_after = hooks.period_seconds
    return result


def _pod_patches(
    members: list[Member],
    election: Election,
    by_name: dict[str, Member],
    demote: str | None,
    hooks: Hooks,
) -> dict[str, dict[str, object]]:
    primary = by_name.get(election.primary)
    address = primary.ip if primary is not None and primary.uid == election.uid else ""
    patches: dict[str, dict[str, object]] = {}
    for m in members:
        annotations: dict[str, object] = {}
        want = Assignment(
            election.primary if election.epoch else "",
            address,
            election.epoch,
            demote=m.name == demote or (m.assignment.demote and m.name == election.primary),
            switchover=m.assignment.switchover,
        )
        if election.epoch and (
            m.assignment.primary != want.primary
            or m.assignment.address != want.address
            or m.assignment.epoch != want.epoch
        ):
            annotations[r.PRIMARY_ANNOTATION] = want.primary
            annotations[r.PRIMARY_ADDRESS_ANNOTATION] = want.address
            annotations[r.EPOCH_ANNOTATION] = str(want.epoch)
        if want.demote != m.assignment.demote:
            annotations[r.DEMOTE_ANNOTATION] = "true" if want.demote else None
        if m.assignment.switchover and m.name != election.primary:
            # The hand-over is done (or this pod no longer leads): say so.
            annotations[r.SWITCHOVER_ANNOTATION] = None
        label = _role_label(m, election, demote)
        patch: dict[str, object] = {}
        if annotations:
            patch["annotations"] = annotations
        if label != m.role_label:
            patch["labels"] = {hooks.role_label: label}
        if patch:
            patches[m.name] = {"metadata": patch}
    return patches


def _role_label(m: Member, election: Election, demote: str | None) -> str | None:
    """Services select on this.

    After a failover the elected primary carries ``primary`` from the
    moment it is elected, while its agent still promotes it: the route
    moves in parallel with the promotion, and writes were failing anyway.
    After a switchover it carries it once it reports itself writable, and
    a primary asked to hand over loses it before it demotes: in a planned
    hand-over no client is routed to a read-only primary, which some (such
    as MediaWiki, for 5 s) remember. It is never on two pods, since only
    the elected one gets it. A replica carries ``replica`` once it follows
    the current primary.
    """
    if election.epoch == 0 or m.terminating:
        return None
    report = m.report
    if m.name == election.primary and m.uid == election.uid:
        leaving = m.name == demote or m.assignment.demote or m.assignment.switchover
        writable = (
            report is not None
            and report.role == "primary"
            and report.writable
            and report.epoch == election.epoch
        )
        return (
            "primary" if m.running and not leaving and (writable or not election.planned) else None
        )
    if report is None or report.epoch != election.epoch:
        return None
    return "replica" if report.role == "replica" else None
