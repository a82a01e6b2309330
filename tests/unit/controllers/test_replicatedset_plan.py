"""Who a replicated set elects, and when: the cases that lose data if decided wrong."""

from __future__ import annotations

from controlplane.controllers.replicatedset_plan import Election, Member, Timers, plan
from corral import replication
from corral.replication import Assignment, Report

HOOKS = replication.parse_hooks(
    '{"container": "db", "status": ["s"], "promote": ["p"], "demote": ["d"],'
    ' "follow": ["f"], "rebuild": ["r"], "leaseSeconds": 12}'
)


def member(
    name: str,
    role: str | None = "replica",
    position: tuple[int, ...] = (10,),
    *,
    epoch: int = 1,
    writable: bool = False,
    alive: bool = True,
    running: bool = True,
    terminating: bool = False,
    uid: str = "",
    assignment: Assignment | None = None,
    label: str | None = None,
) -> Member:
    report = None if role is None else Report(role, position, writable, epoch)  # type: ignore[arg-type]
    return Member(
        name=name,
        uid=uid or f"uid-{name}",
        ip=f"10.0.0.{name[-1]}",
        node=f"node-{name[-1]}",
        alive=alive,
        terminating=terminating,
        running=running,
        report=report,
        assignment=assignment or Assignment("db-0", "10.0.0.0", 1),
        role_label=label,
    )


ELECTION = Election("db-0", "uid-db-0", 1)


def primary(**kw: object) -> Member:
    return member("db-0", "primary", (10,), writable=True, **kw)  # type: ignore[arg-type]


def test_the_first_election_waits_until_every_running_pod_has_said_what_it_holds() -> None:
    step = plan(
        [member("db-0", "empty", (), epoch=0), member("db-1", None, epoch=0)],
        Election(),
        HOOKS,
        Timers(),
    )
    assert step.elect is None
    assert "db-1" in step.reason


def test_the_first_election_prefers_a_copy_with_data_then_the_lowest_ordinal() -> None:
    empty = [member(f"db-{i}", "empty", (), epoch=0) for i in (2, 0, 1)]
    assert plan(empty, Election(), HOOKS, Timers()).elect == empty[1]
    with_data = [member("db-0", "empty", (), epoch=0), member("db-1", "primary", (5,), epoch=0)]
    assert plan(with_data, Election(), HOOKS, Timers()).elect == with_data[1]


def test_a_dead_primarys_node_hands_the_role_to_the_most_advanced_converged_replica() -> None:
    behind, ahead = member("db-1", position=(9,)), member("db-2", position=(11,))
    step = plan([primary(alive=False), behind, ahead], ELECTION, HOOKS, Timers())
    assert step.elect == ahead
    assert "silent" in step.reason


def test_a_replica_that_has_not_converged_to_this_election_is_never_promoted() -> None:
    # An old primary back from a partition, its copy possibly diverged: its
    # position is the largest, yet it follows no one in this election.
    diverged = member("db-1", position=(99,), epoch=0)
    converged = member("db-2", position=(10,))
    step = plan([primary(alive=False), diverged, converged], ELECTION, HOOKS, Timers())
    assert step.elect == converged
    only_diverged = plan([primary(alive=False), diverged], ELECTION, HOOKS, Timers())
    assert only_diverged.elect is None


def test_a_new_pod_under_the_primarys_name_is_not_the_primary() -> None:
    replacement = member("db-0", "empty", (), epoch=0, uid="new-uid")
    survivor = member("db-1", position=(10,))
    step = plan([replacement, survivor], ELECTION, HOOKS, Timers())
    assert step.elect == survivor


def test_a_primary_down_for_less_than_a_lease_keeps_its_role() -> None:
    members = [primary(running=False), member("db-1")]
    assert plan(members, ELECTION, HOOKS, Timers(unhealthy={"db-0": 11.0})).elect is None
    assert plan(members, ELECTION, HOOKS, Timers(unhealthy={"db-0": 12.0})).elect == members[1]


def test_a_switchover_routes_away_then_demotes_then_elects_a_caught_up_replica() -> None:
    asked = Assignment("db-0", "10.0.0.0", 1, switchover=True)
    replica = member("db-1", position=(10,))
    # The Service stops routing to it first: still writable, no demote yet.
    first = plan([primary(assignment=asked, label="primary"), replica], ELECTION, HOOKS, Timers())
    assert first.elect is None and first.demote is None
    assert first.patches["db-0"]["metadata"] == {"labels": {"role": None}}  # type: ignore[index]
    unlabelled = primary(assignment=asked)
    soon = plan([unlabelled, replica], ELECTION, HOOKS, Timers(unlabelled={"db-0": 0.1}))
    assert soon.demote is None
    # A period later, with the route withdrawn everywhere, it demotes.
    later = plan([unlabelled, replica], ELECTION, HOOKS, Timers(unlabelled={"db-0": 1.0}))
    assert later.demote == "db-0"
    assert later.patches["db-0"]["metadata"]["annotations"][replication.DEMOTE_ANNOTATION] == "true"  # type: ignore[index]

    demoted = Assignment("db-0", "10.0.0.0", 1, demote=True, switchover=True)
    still_writable = member("db-0", "primary", (10,), writable=True, assignment=demoted)
    assert plan([still_writable, replica], ELECTION, HOOKS, Timers()).elect is None

    read_only = member("db-0", "primary", (12,), writable=False, assignment=demoted)
    lagging = plan([read_only, replica], ELECTION, HOOKS, Timers())
    assert lagging.elect is None
    assert "catch up" in lagging.reason

    caught_up = member("db-1", position=(12,))
    done = plan([read_only, caught_up], ELECTION, HOOKS, Timers())
    assert done.elect == caught_up
    annotations = done.patches["db-0"]["metadata"]["annotations"]  # type: ignore[index]
    assert annotations[replication.PRIMARY_ANNOTATION] == "db-1"  # type: ignore[index]
    assert annotations[replication.EPOCH_ANNOTATION] == "2"  # type: ignore[index]
    assert annotations[replication.DEMOTE_ANNOTATION] is None  # type: ignore[index]


def test_a_terminating_primary_hands_over_like_a_drained_one() -> None:
    leaving = primary(terminating=True)
    step = plan([leaving, member("db-1")], ELECTION, HOOKS, Timers(unlabelled={"db-0": 1.0}))
    assert step.demote == "db-0"


def test_a_fenced_primary_back_in_touch_is_elected_anew_by_position() -> None:
    fenced = member("db-0", "primary", (10,), writable=False, epoch=0)
    replica = member("db-1", position=(10,))
    waiting = plan([fenced, replica], ELECTION, HOOKS, Timers(not_converged={"db-0": 5.0}))
    assert waiting.elect is None
    again = plan([fenced, replica], ELECTION, HOOKS, Timers(not_converged={"db-0": 30.0}))
    # Equal positions: the lower ordinal, the pod that was primary.
    assert again.elect == fenced


def test_the_primary_is_labelled_once_elected_and_replicas_once_converged() -> None:
    promoting = [member("db-0", "replica"), member("db-1")]  # elected, promote still running
    labels = plan(promoting, ELECTION, HOOKS, Timers()).patches["db-0"]["metadata"]["labels"]  # type: ignore[index]
    assert labels == {"role": "primary"}
    members = [
        primary(),
        member("db-1"),
        member("db-2", epoch=0, label="replica"),
        member("db-3", "primary", (3,), writable=True, epoch=0),
    ]
    patches = plan(members, ELECTION, HOOKS, Timers()).patches
    assert patches["db-0"]["metadata"]["labels"] == {"role": "primary"}  # type: ignore[index]
    assert patches["db-1"]["metadata"]["labels"] == {"role": "replica"}  # type: ignore[index]
    assert patches["db-2"]["metadata"]["labels"] == {"role": None}  # type: ignore[index]
    # A writable copy outside the election never gets the primary's label.
    assert "db-3" not in patches or "labels" not in patches["db-3"]["metadata"]  # type: ignore[operator]


def test_the_primary_label_goes_when_it_is_told_to_demote_or_is_not_running() -> None:
    asked = Assignment("db-0", "10.0.0.0", 1, switchover=True)
    first = plan(
        [primary(assignment=asked, label="primary"), member("db-1")], ELECTION, HOOKS, Timers()
    )
    assert first.patches["db-0"]["metadata"]["labels"] == {"role": None}  # type: ignore[index]
    down = plan(
        [primary(running=False, label="primary"), member("db-1")], ELECTION, HOOKS, Timers()
    )
    assert down.patches["db-0"]["metadata"]["labels"] == {"role": None}  # type: ignore[index]


def test_hooks_refuse_a_lease_their_period_cannot_fence_in_time() -> None:
    text = (
        '{"container": "db", "status": ["s"], "promote": ["p"], "demote": ["d"],'
        ' "follow": ["f"], "rebuild": ["r"], "leaseSeconds": 6, "periodSeconds": 2}'
    )
    try:
        replication.parse_hooks(text)
    except replication.HooksError as error:
        assert "periodSeconds" in str(error)
    else:
        raise AssertionError("a 2 s period cannot fence within half of a 6 s lease")


def test_after_a_switchover_the_new_primary_is_labelled_only_once_writable() -> None:
    planned = Election("db-1", "uid-db-1", 2, planned=True)
    promoting = [member("db-0", epoch=2), member("db-1", "replica", epoch=1)]
    waiting = plan(promoting, planned, HOOKS, Timers()).patches["db-1"]["metadata"]
    assert "labels" not in waiting  # type: ignore[operator]
    promoted = [member("db-0", epoch=2), member("db-1", "primary", writable=True, epoch=2)]
    labels = plan(promoted, planned, HOOKS, Timers()).patches["db-1"]["metadata"]["labels"]  # type: ignore[index]
    assert labels == {"role": "primary"}
