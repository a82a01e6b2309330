"""Revisions, history pruning, and choosing what a rollback goes back to."""

from __future__ import annotations

from controlplane.controllers import deployment_history as h
from controlplane.controllers.deployment_objects import REVISION, REVISION_HISTORY
from controlplane.controllers.deployment_status import PROGRESSING, TIMED_OUT
from corral.objects import Obj
from tests.unit.controllers.test_deployment_builders import deployment, replica_set


def test_new_replica_set_takes_the_next_revision_and_the_deployment_annotations() -> None:
    d = deployment(
        annotations={
            "kubernetes.io/change-cause": "image 2",
            REVISION: "7",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            h.ROLLED_BACK_FROM: "3",
        }
    )
    rs = replica_set("web-a", 1)
    assert h.set_new_rs_annotations(d, rs, 4)
    notes = rs["metadata"]["annotations"]
    assert notes[REVISION] == "4"
    assert notes["kubernetes.io/change-cause"] == "image 2"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in notes
    assert h.ROLLED_BACK_FROM not in notes
    assert REVISION_HISTORY not in notes  # it had no revision before
    assert not h.set_new_rs_annotations(d, rs, 4)


def test_going_back_to_a_replica_set_records_its_old_revisions() -> None:
    d = deployment()
    rs = replica_set("web-a", 0, revision=2)
    h.set_new_rs_annotations(d, rs, 4)
    h.set_new_rs_annotations(d, rs, 6)
    assert rs["metadata"]["annotations"][REVISION] == "6"
    assert rs["metadata"]["annotations"][REVISION_HISTORY] == "2,4"
    # Never backwards: a lower "next" revision leaves it be.
    assert not h.set_new_rs_annotations(d, rs, 5)


def test_revision_history_is_capped() -> None:
    long = ",".join(str(n) for n in range(1000, 1500))
    capped = h._append_history(long, "9999")
    assert len(capped) <= h.MAX_REVISION_HISTORY_CHARS
    assert capped.endswith(",9999")


def test_cleanup_keeps_revision_history_limit_old_replica_sets() -> None:
    d = deployment(history_limit=2)
    old = [replica_set(f"web-{n}", 0, revision=n) for n in (3, 1, 4, 2)]
    assert [rs["metadata"]["name"] for rs in h.cleanup_candidates(d, old)] == ["web-1", "web-2"]


def test_cleanup_never_deletes_a_replica_set_with_pods() -> None:
    d = deployment(history_limit=0)
    old = [
        replica_set("web-1", 1, revision=1),  # still asked for a pod
        replica_set("web-2", 0, actual=1, revision=2),  # a pod is still going
        replica_set("web-3", 0, revision=3, generation=2, observed=1),  # not yet seen at 0
        replica_set("web-4", 0, revision=4),
    ]
    assert [rs["metadata"]["name"] for rs in h.cleanup_candidates(d, old)] == ["web-4"]
    assert h.cleanup_candidates(deployment(history_limit=None), old) == []


def test_previous_revision_is_the_second_highest() -> None:
    sets = [replica_set(f"web-{n}", 0, revision=n) for n in (2, 5, 3)]
    previous = h.previous_revision(sets)
    assert previous is not None and previous["metadata"]["name"] == "web-3"
    assert h.previous_revision(sets[:1]) is None


def test_rollback_takes_the_target_template_and_annotations() -> None:
    d = deployment(
        image="nginx:2",
        annotations={REVISION: "3", "kubernetes.io/change-cause": "v2", h.AUTO_ROLLBACK: "true"},
    )
    target = replica_set("web-abc", 0, revision=2, annotations={"kubernetes.io/change-cause": "v1"})
    decision = h.AutoRollback(target=target, from_revision=3, to_revision=2)
    out = h.rolled_back(d, decision)
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert "pod-template-hash" not in out["spec"]["template"]["metadata"]["labels"]
    assert out["metadata"]["annotations"] == {
        REVISION: "3",
        "kubernetes.io/change-cause": "v1",
        h.AUTO_ROLLBACK: "true",
        h.ROLLED_BACK_FROM: "3",
    }
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"


def _timed_out(d: Obj) -> Obj:
    return {
        "observedGeneration": d["metadata"]["generation"],
        "conditions": [{"type": PROGRESSING, "status": "False", "reason": TIMED_OUT}],
    }


def _history() -> tuple[list[Obj], Obj]:
    good = replica_set("web-good", 0, revision=2, image="nginx:1")
    bad = replica_set("web-bad", 3, available=0, revision=3, image="nginx:2")
    return [replica_set("web-first", 0, revision=1, image="nginx:0"), good, bad], bad


def test_auto_rollback_goes_to_the_previous_revision() -> None:
    d = deployment(image="nginx:2", annotations={h.AUTO_ROLLBACK: "true"})
    sets, bad = _history()
    decision = h.auto_rollback(d, _timed_out(d), sets, bad)
    assert isinstance(decision, h.AutoRollback)
    assert (decision.from_revision, decision.to_revision) == (3, 2)
    assert decision.target["metadata"]["name"] == "web-good"


def test_auto_rollback_only_when_asked_and_only_on_a_deadline() -> None:
    sets, bad = _history()
    plain = deployment(image="nginx:2")
    assert h.auto_rollback(plain, _timed_out(plain), sets, bad) is None
    d = deployment(image="nginx:2", annotations={h.AUTO_ROLLBACK: "true"})
    progressing = {"conditions": [{"type": PROGRESSING, "status": "True", "reason": "X"}]}
    assert h.auto_rollback(d, progressing, sets, bad) is None
    # A failure reported for an older spec says nothing about this one.
    stale = {**_timed_out(d), "observedGeneration": 0}
    assert h.auto_rollback(d, stale, sets, bad) is None


def test_auto_rollback_never_ping_pongs() -> None:
    # Revision 3 failed and was rolled back to 2's template, which became 4;
    # now 4 fails too: going "back" to 3 would undo the rollback.
    d = deployment(image="nginx:1", annotations={h.AUTO_ROLLBACK: "true", h.ROLLED_BACK_FROM: "3"})
    current = replica_set("web-good", 3, available=0, revision=4, image="nginx:1")
    failed = replica_set("web-bad", 0, revision=3, image="nginx:2")
    decision = h.auto_rollback(d, _timed_out(d), [failed, current], current)
    assert isinstance(decision, h.NoAutoRollback)
    assert "automatic rollback from revision 3" in decision.reason


def test_auto_rollback_needs_a_previous_revision() -> None:
    d = deployment(image="nginx:2", annotations={h.AUTO_ROLLBACK: "true"})
    only = replica_set("web-bad", 3, available=0, revision=1, image="nginx:2")
    decision = h.auto_rollback(d, _timed_out(d), [only], only)
    assert isinstance(decision, h.NoAutoRollback)
    assert "no previous revision" in decision.reason
