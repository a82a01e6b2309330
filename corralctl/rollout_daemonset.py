"""``corral rollout status|history|undo`` for a DaemonSet, as kubectl 1.32 does them.

A DaemonSet's history is its ControllerRevisions (those it controls), each
holding the strategic merge patch that puts its template back; ``undo``
sends that patch as it is (kubectl's ``DaemonSetRollbacker``), ``status``
reads the node counts the controller reports (``DaemonSetStatusViewer``).
"""

from __future__ import annotations

import copy

from corral.objects import Obj, annotations_of, meta, spec, status, uid_of

CHANGE_CAUSE = "kubernetes.io/change-cause"


class RolloutError(Exception):
    """Reported as ``error: ...`` with a non-zero exit."""


def status_line(ds: Obj) -> tuple[str, bool]:
    """kubectl's ``DaemonSetStatusViewer``: what to say, and whether the rollout is done."""
    strategy = (spec(ds).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy != "RollingUpdate":
        raise RolloutError("rollout status is only available for RollingUpdate strategy type")
    name = meta(ds).get("name", "")
    current = status(ds)
    if int(meta(ds).get("generation") or 0) > int(current.get("observedGeneration") or 0):
        return "Waiting for daemon set spec update to be observed...", False
    desired = int(current.get("desiredNumberScheduled") or 0)
    updated = int(current.get("updatedNumberScheduled") or 0)
    available = int(current.get("numberAvailable") or 0)
    waiting = f'Waiting for daemon set "{name}" rollout to finish: '
    if updated < desired:
        return f"{waiting}{updated} out of {desired} new pods have been updated...", False
    if available < desired:
        return f"{waiting}{available} of {desired} updated pods are available...", False
    return f'daemon set "{name}" successfully rolled out', True


def owned_revisions(ds: Obj, revisions: list[Obj]) -> dict[int, Obj]:
    """The set's revisions by number (those it controls, by uid)."""
    uid = uid_of(ds)
    return {
        int(r.get("revision") or 0): r
        for r in revisions
        if any(
            ref.get("controller") and ref.get("uid") == uid
            for ref in meta(r).get("ownerReferences") or []
        )
    }


def template_of(revision: Obj) -> Obj:
    """The pod template a revision's patch holds."""
    template = copy.deepcopy(spec(revision.get("data") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def as_replica_set_like(revision: Obj) -> Obj:
    """A revision in the shape ``rollout.revision_template`` describes: template and cause."""
    return {
        "metadata": {"annotations": annotations_of(revision)},
        "spec": {"template": template_of(revision)},
    }


def rollback_target(by_number: dict[int, Obj], to_revision: int) -> Obj:
    """kubectl's ``findHistory``: revision ``to_revision``, or the one before the newest for 0."""
    if to_revision < 0:
        raise RolloutError(f"unable to find specified revision {to_revision} in history")
    if to_revision == 0:
        if len(by_number) <= 1:
            raise RolloutError("no last revision to roll back to")
        return by_number[sorted(by_number)[-2]]
    found = by_number.get(to_revision)
    if found is None:
        raise RolloutError(f"unable to find specified revision {to_revision} in history")
    return found


def _semantic(value: object) -> object:
    """Empty maps and lists count as absent, as Kubernetes' semantic equality has it."""
    if isinstance(value, dict):
        kept = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def matches(ds: Obj, revision: Obj) -> bool:
    """``daemonSetMatch``: the set's template is already the revision's."""
    return _semantic(spec(ds).get("template") or {}) == _semantic(template_of(revision))
