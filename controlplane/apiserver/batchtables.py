"""kubectl's columns for Jobs and CronJobs (``printJob``, ``printCronJob``).

The cells before the wide ones; tables.py adds containers, images and the
selector, as it does for every workload.
"""

from __future__ import annotations

from datetime import datetime

from corral.durations import human_duration
from corral.objects import Obj, meta, name_of, parse_time, spec, status

Cell = str | int


def _age(timestamp: str | None, now: datetime) -> str:
    at = parse_time(timestamp)
    return "<unknown>" if at is None else human_duration(now - at)


def _true(obj: Obj, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in status(obj).get("conditions") or []
    )


def job_status_text(job: Obj) -> str:
    """The Status column: what the Job's conditions say, as kubectl 1.32 words it."""
    for kind in ("Failed", "Complete", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if _true(job, kind):
            return kind
    if meta(job).get("deletionTimestamp"):
        return "Terminating"
    return "Running"


def completions_text(job: Obj) -> str:
    succeeded = int(status(job).get("succeeded") or 0)
    completions = spec(job).get("completions")
    parallelism = spec(job).get("parallelism")
    if completions is not None:
        return f"{succeeded}/{completions}"
    if parallelism is not None and int(parallelism) > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def duration_text(job: Obj, now: datetime) -> str:
    started = parse_time(status(job).get("startTime"))
    if started is None:
        return ""
    finished = parse_time(status(job).get("completionTime"))
    return human_duration((finished or now) - started)


def job_cells(job: Obj, now: datetime) -> list[Cell]:
    return [
        name_of(job),
        job_status_text(job),
        completions_text(job),
        duration_text(job, now),
        _age(meta(job).get("creationTimestamp"), now),
    ]


def cron_job_cells(cron_job: Obj, now: datetime) -> list[Cell]:
    last = status(cron_job).get("lastScheduleTime")
    return [
        name_of(cron_job),
        str(spec(cron_job).get("schedule", "")),
        str(spec(cron_job).get("timeZone") or "<none>"),
        "True" if spec(cron_job).get("suspend") else "False",
        len(status(cron_job).get("active") or []),
        _age(last, now) if last else "<none>",
        _age(meta(cron_job).get("creationTimestamp"), now),
    ]
