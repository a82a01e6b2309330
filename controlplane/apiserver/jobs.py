"""Write hooks for Jobs: the generated selector and the labels it matches.

Kubernetes' job strategy gives a Job whose ``manualSelector`` is not true a
selector on its own uid, and stamps the pod template with the labels that
selector matches (``batch.kubernetes.io/controller-uid``), plus the Job's
name (``batch.kubernetes.io/job-name``) and the legacy unprefixed pair. The
uid and a generated name exist only once the store is about to write, which
is why this is a write hook rather than part of the strategy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from corral.objects import Obj, name_of, uid_of

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"

Undo = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


def generate_selector(job: Obj) -> None:
    """Set the selector and template labels of a Job that does not choose its own."""
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector"):
        return
    uid, name = uid_of(job), name_of(job)
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    # Written over, not defaulted: a create retried under a new generated
    # name gets a new uid, and the labels must follow it.
    labels[LEGACY_CONTROLLER_UID_LABEL] = labels[CONTROLLER_UID_LABEL] = uid
    labels[LEGACY_JOB_NAME_LABEL] = labels[JOB_NAME_LABEL] = name
    spec["selector"] = {"matchLabels": {CONTROLLER_UID_LABEL: uid}}


class JobSelector:
    async def before_create(self, obj: Obj) -> Undo:
        generate_selector(obj)
        return _nothing

    async def before_update(self, new: Obj, old: Obj) -> Undo:
        return _nothing

    async def after_update(self, new: Obj, old: Obj) -> None:
        return None

    async def after_delete(self, obj: Obj) -> None:
        return None
