"""Whom a leaving etcd leader hands over to: a started voter that answers, never itself."""

from __future__ import annotations

from corralctl.etcdmembers import Member, transferee


def _member(id_: int, *, name: str = "", learner: bool = False) -> Member:
    return Member(id_, name or f"m{id_}", [f"https://10.0.0.{id_}:2380"], [], learner)


def test_the_lowest_answering_voter_other_than_the_leaver() -> None:
    me, b, c = _member(1), _member(3), _member(2)
    assert transferee(me, [c, me, b], {1, 2, 3}) == c
    assert transferee(me, [b, c, me], {1, 2, 3}) == c  # not the listing's order


def test_learners_silent_and_unstarted_members_are_passed_over() -> None:
    me = _member(1)
    learner, silent, unstarted, fit = (
        _member(2, learner=True),
        _member(3),
        Member(4, "", ["https://10.0.0.4:2380"], []),
        _member(5),
    )
    members = [me, learner, silent, unstarted, fit]
    assert transferee(me, members, {1, 2, 4, 5}) == fit


def test_none_when_no_member_could_lead() -> None:
    me = _member(1)
    assert transferee(me, [me, _member(2, learner=True), _member(3)], {1, 2}) is None
    assert transferee(me, [me], {1}) is None
