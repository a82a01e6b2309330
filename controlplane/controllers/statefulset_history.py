"""A StatefulSet's or DaemonSet's revisions: one ControllerRevision per pod template.

As Kubernetes stores them, a revision's ``data`` is the strategic merge
patch that puts its template back (``{"spec": {"template": {..., "$patch":
"replace"}}}``), so that ``kubectl rollout undo`` applies it as it is. Its
name is ``<set>-<hash of the data>``, which every pod of that revision
carries in its ``controller-revision-hash`` label (the revision itself
carries the bare hash there, as in Kubernetes); its ``revision`` number orders the
history. Going back to an earlier template gives its old revision the next
number, rather than a copy of it.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping, Sequence

import orjson

from controlplane.controllers import podutil
from controlplane.controllers.statefulset_identity import REVISION_LABEL
from corral.objects import Obj, meta, name_of, spec

# Kubernetes' rand.SafeEncodeString alphabet: no vowels, no look-alikes.
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def patch_data(sts: Obj) -> Obj:
    """The revision data for the set's current template."""
    template = copy.deepcopy(spec(sts).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision holds."""
    template = copy.deepcopy(spec(revision.get("data") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def hash_of(data: Obj, collision_count: int = 0) -> str:
    digest = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
    if collision_count:
        digest.update(str(collision_count).encode())
    return "".join(_SAFE[b % len(_SAFE)] for b in digest.digest()[:10])


def new_revision(
    sts: Obj,
    number: int,
    collision_count: int = 0,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """A revision of ``sts`` (any owner with a pod template: a DaemonSet's too).

    It carries ``labels`` (by default the selector's ``matchLabels``) and
    the hash; a DaemonSet passes its template's labels and its own
    annotations, as Kubernetes' daemon controller does (``kubectl rollout
    history`` finds revisions by the selector and shows their change-cause).
    """
    data = patch_data(sts)
    digest = hash_of(data, collision_count)
    chosen = labels if labels is not None else (spec(sts).get("selector") or {}).get("matchLabels")
    metadata: Obj = {
        "name": f"{name_of(sts)}-{digest}",
        "namespace": meta(sts).get("namespace"),
        "labels": {**(chosen or {}), REVISION_LABEL: digest},
        "ownerReferences": [podutil.owner_reference(sts)],
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": metadata,
        "data": data,
        "revision": number,
    }


def same_data(a: Obj, b: Obj) -> bool:
    return bool(_semantic(a.get("data")) == _semantic(b.get("data")))


def _semantic(value: object) -> object:
    """Empty maps and lists count as absent, as Kubernetes' semantic equality has it."""
    if isinstance(value, dict):
        kept = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    return sorted(revisions, key=lambda r: (revision_number(r), name_of(r)))


def find_equal(revisions: Sequence[Obj], wanted: Obj) -> Obj | None:
    """The newest revision holding the same template as ``wanted``."""
    equal = [r for r in revisions if same_data(r, wanted)]
    return sort_revisions(equal)[-1] if equal else None


def next_number(revisions: Sequence[Obj]) -> int:
    return max((revision_number(r) for r in revisions), default=0) + 1


def to_prune(
    sts: Obj, revisions: Sequence[Obj], in_use: set[str], current: str, update: str
) -> list[Obj]:
    """Revisions beyond ``revisionHistoryLimit`` that nothing uses any more, oldest first.

    ``in_use``, ``current`` and ``update`` are revision names: what pods and
    the set's status refer to.
    """
    limit = int(spec(sts).get("revisionHistoryLimit", 10))
    keep = {current, update, *in_use}
    unused = [r for r in sort_revisions(revisions) if name_of(r) not in keep]
    excess = len(unused) - limit
    return unused[:excess] if excess > 0 else []
