"""Revisions, history pruning and rollback: which ReplicaSet is which version.

Each ReplicaSet of a Deployment carries ``deployment.kubernetes.io/revision``.
The one running the current template always has the highest: going back to
an older template gives its ReplicaSet the next number, and the numbers it
had are kept in ``deployment.kubernetes.io/revision-history``. Old
ReplicaSets scaled to zero are the history ``rollout undo`` goes back to;
beyond ``revisionHistoryLimit`` the oldest are deleted.

Automatic rollback (a corral addition, after Nomad's ``auto_revert``): with
``deployment.corral.io/auto-rollback: "true"``, a rollout whose Progressing
condition turns False with ProgressDeadlineExceeded is rolled back to the
previous revision's template, exactly as ``rollout undo`` would, and the
Deployment is annotated ``deployment.corral.io/auto-rolled-back-from`` with
the revision that failed. A rollback never goes back to the revision it
came from, so two failing revisions cannot ping-pong.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from controlplane.controllers import deployment_objects as o
from controlplane.controllers import podutil
from controlplane.controllers.deployment_objects import (
    DESIRED_REPLICAS,
    LAST_APPLIED,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
)
from controlplane.controllers.deployment_status import PROGRESSING, TIMED_OUT, get_condition
from controlplane.controllers.deployment_templates import equal_ignore_hash, without_hash
from corral.objects import Obj

AUTO_ROLLBACK = "deployment.corral.io/auto-rollback"
ROLLED_BACK_FROM = "deployment.corral.io/auto-rolled-back-from"

# Kept to the Deployment itself: never copied onto its ReplicaSets, and
# kept as they are when a rollback copies a ReplicaSet's annotations back.
# The rollback marker belongs here so that an undo of an undo cannot bring
# back a stale one.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        LAST_APPLIED,
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
        ROLLED_BACK_FROM,
    }
)

# Kubernetes caps the history annotation so that a much rolled-back
# ReplicaSet cannot outgrow the annotation size limit.
MAX_REVISION_HISTORY_CHARS = 2000


def max_revision(replica_sets: Sequence[Obj | None]) -> int:
    return max((o.revision(rs) for rs in replica_sets if rs is not None), default=0)


def _set_annotation(obj: Obj, key: str, value: str) -> bool:
    annotations = obj.setdefault("metadata", {}).setdefault("annotations", {})
    if annotations.get(key) == value:
        return False
    annotations[key] = value
    return True


def copy_annotations(d: Obj, rs: Obj) -> bool:
    """The Deployment's annotations onto ``rs`` (``kubernetes.io/change-cause`` among them)."""
    changed = False
    for key, value in o.annotations_of(d).items():
        if key not in ANNOTATIONS_TO_SKIP:
            changed = _set_annotation(rs, key, value) or changed
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    """What ``rs`` was sized for: proportional scaling reads these back."""
    changed = _set_annotation(rs, DESIRED_REPLICAS, str(desired))
    return _set_annotation(rs, MAX_REPLICAS, str(max_replicas)) or changed


def _append_history(history: str, revision: str) -> str:
    entries = [e for e in history.split(",") if e] + [revision]
    while len(",".join(entries)) > MAX_REVISION_HISTORY_CHARS and len(entries) > 1:
        entries.pop(0)
    return ",".join(entries)


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int) -> bool:
    """``SetNewReplicaSetAnnotations``: copied annotations, and the highest revision.

    A ReplicaSet that had a lower revision is being rolled back to; the
    number it had goes to its revision history.
    """
    changed = copy_annotations(d, rs)
    had = o.annotations_of(rs).get(REVISION)
    if o.revision(rs) < new_revision:
        _set_annotation(rs, REVISION, str(new_revision))
        changed = True
        if had is not None:
            history = o.annotations_of(rs).get(REVISION_HISTORY, "")
            _set_annotation(rs, REVISION_HISTORY, _append_history(history, had))
    return changed


def cleanup_candidates(d: Obj, old_rs: Sequence[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond ``revisionHistoryLimit`` that are safe to delete, oldest first.

    Safe means scaled to zero, with no pods left, and seen so by the
    ReplicaSet controller (its observedGeneration caught up): deleting one
    that still has pods would strand them.
    """
    limit = o.spec(d).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rs if not podutil.is_terminating(rs)]
    excess = len(alive) - int(limit)
    if excess <= 0:
        return []
    by_revision = sorted(alive, key=lambda rs: (o.revision(rs), o.creation_key(rs)))
    return [
        rs
        for rs in by_revision[:excess]
        if o.replicas(rs) == 0
        and o.actual_replicas(rs) == 0
        and o.generation(rs) <= int(o.status(rs).get("observedGeneration") or 0)
    ]


# --- rollback ---------------------------------------------------------------------------------


def previous_revision(replica_sets: Sequence[Obj]) -> Obj | None:
    """kubectl's "previous revision": the ReplicaSet with the second-highest revision."""
    ranked = sorted((rs for rs in replica_sets if o.revision(rs) > 0), key=o.revision, reverse=True)
    return ranked[1] if len(ranked) > 1 else None


def rollback_annotations(d: Obj, target: Obj, keep: frozenset[str]) -> dict[str, str]:
    """kubectl's rollback: the Deployment's kept annotations, the rest from ``target``."""
    current = o.annotations_of(d)
    out = {k: v for k, v in current.items() if k in keep}
    out.update({k: v for k, v in o.annotations_of(target).items() if k not in keep})
    return out


def rollback_template(target: Obj) -> Obj:
    """The template to put back: the ReplicaSet's, without its ``pod-template-hash``."""
    return without_hash(o.template(target))


@dataclass(frozen=True)
class AutoRollback:
    target: Obj
    from_revision: int
    to_revision: int


@dataclass(frozen=True)
class NoAutoRollback:
    """A failed rollout that is deliberately not rolled back, and why."""

    reason: str


def auto_rollback(
    d: Obj, status: Obj, replica_sets: Sequence[Obj], new_rs: Obj | None
) -> AutoRollback | NoAutoRollback | None:
    """Whether a timed-out rollout should go back to the previous revision.

    None when there is nothing to decide: not opted in, not failed, or the
    failure is about an older generation of the spec.
    """
    if o.annotations_of(d).get(AUTO_ROLLBACK, "").lower() != "true":
        return None
    condition = get_condition(status, PROGRESSING)
    if condition is None or condition.get("status") != "False":
        return None
    if condition.get("reason") != TIMED_OUT:
        return None
    if int(status.get("observedGeneration") or 0) < o.generation(d):
        return None
    failed = o.revision(new_rs) if new_rs is not None else o.revision(d)
    target = previous_revision(replica_sets)
    if target is None:
        return NoAutoRollback(f"revision {failed} failed and there is no previous revision")
    to_revision = o.revision(target)
    if str(to_revision) == o.annotations_of(d).get(ROLLED_BACK_FROM):
        return NoAutoRollback(
            f"revision {failed} failed, and it is itself an automatic rollback "
            f"from revision {to_revision}"
        )
    if equal_ignore_hash(o.template(target), o.template(d)):
        return None
    return AutoRollback(target=target, from_revision=failed, to_revision=to_revision)


def rolled_back(d: Obj, decision: AutoRollback) -> Obj:
    """A copy of ``d`` with the target's template and annotations, and the marker."""
    out = copy.deepcopy(d)
    keep = ANNOTATIONS_TO_SKIP | {AUTO_ROLLBACK}
    annotations = rollback_annotations(d, decision.target, keep)
    annotations[ROLLED_BACK_FROM] = str(decision.from_revision)
    out.setdefault("metadata", {})["annotations"] = annotations
    out.setdefault("spec", {})["template"] = rollback_template(decision.target)
    return out
