"""Indexed Jobs: each pod owns one completion index, 0 to completions - 1.

As Kubernetes does it: the index is in the pod's annotation and label
``batch.kubernetes.io/job-completion-index`` and its ``JOB_COMPLETION_INDEX``
environment variable, the pod's hostname is ``<job>-<index>``, and the Job
is complete once every index has a succeeded pod; ``status.completedIndexes``
lists them as intervals ("0-2,4").
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from controlplane.controllers import podutil
from corral.objects import Obj, annotations_of, name_of, spec, status

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"


def is_indexed(job: Obj) -> bool:
    return spec(job).get("completionMode") == "Indexed"


def index_of(pod: Obj, completions: int) -> int | None:
    """The pod's completion index; None when missing, malformed or out of range."""
    raw = annotations_of(pod).get(INDEX_KEY)
    try:
        index = int(raw) if raw is not None else -1
    except ValueError:
        return None
    return index if 0 <= index < completions else None


def completed(job: Obj, pods: Iterable[Obj]) -> set[int]:
    """Indexes with a succeeded pod, including those status recorded (their pods may be gone)."""
    completions = int(spec(job).get("completions") or 0)
    recorded = parse_intervals(str(status(job).get("completedIndexes") or ""), completions)
    return recorded | {
        i
        for p in pods
        if podutil.phase(p) == "Succeeded" and (i := index_of(p, completions)) is not None
    }


def running(pods: Iterable[Obj], completions: int) -> set[int]:
    return {i for p in pods if podutil.is_active(p) and (i := index_of(p, completions)) is not None}


def to_create(job: Obj, pods: list[Obj], count: int) -> list[int]:
    """The lowest ``count`` indexes with neither a succeeded nor a running pod."""
    completions = int(spec(job).get("completions") or 0)
    taken = completed(job, pods) | running(pods, completions)
    return [i for i in range(completions) if i not in taken][:count]


def parse_intervals(text: str, completions: int) -> set[int]:
    """The indexes ``intervals`` wrote; what does not parse or is out of range is left out."""
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            continue
        out.update(range(max(low, 0), min(high, completions - 1) + 1))
    return out


def intervals(indexes: Iterable[int]) -> str:
    """``0-2,4``: sorted indexes as Kubernetes writes completedIndexes."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    start = previous = None
    for index in [*ordered, None]:
        if index is not None and previous is not None and index == previous + 1:
            previous = index
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = index
    return ",".join(parts)


def with_index(pod: Obj, job: Obj, index: int) -> Obj:
    """``pod`` (fresh from the template) marked as the one for ``index``."""
    out = copy.deepcopy(pod)
    metadata = out["metadata"]
    metadata["generateName"] = podutil.generate_name_for(f"{name_of(job)}-{index}")
    metadata.setdefault("annotations", {})[INDEX_KEY] = str(index)
    metadata.setdefault("labels", {})[INDEX_KEY] = str(index)
    pod_spec = out["spec"]
    pod_spec.setdefault("hostname", f"{name_of(job)}-{index}")
    for field in ("initContainers", "containers"):
        for container in pod_spec.get(field) or []:
            env = [e for e in container.get("env") or [] if e.get("name") != INDEX_ENV]
            container["env"] = [*env, {"name": INDEX_ENV, "value": str(index)}]
    return out
