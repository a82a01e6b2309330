"""Jobs and CronJobs, in kubectl's ``JobDescriber`` and ``CronJobDescriber`` layouts."""

from __future__ import annotations

from corral.durations import human_duration
from corral.objects import Obj, meta, parse_time, spec, status
from corralctl.describe.events import write_events
from corralctl.describe.formatting import (
    controlled_by,
    format_time,
    go_bool,
    label_selector_text,
    title_bool,
    write_annotations,
    write_multiline_map,
)
from corralctl.describe.pods import write_pod_template
from corralctl.describe.source import DescribeSource
from corralctl.describe.tabwriter import PrefixWriter

UNSET = "<unset>"
# kubectl caps a long completedIndexes list at this many characters.
_INDEXES_CAP = 50


def _capped(indexes: str) -> str:
    if not indexes:
        return "<none>"
    return indexes if len(indexes) <= _INDEXES_CAP else indexes[:_INDEXES_CAP] + "..."


def _write_job_times(w: PrefixWriter, job: Obj) -> None:
    started = status(job).get("startTime")
    finished = status(job).get("completionTime")
    if started:
        w.write(0, f"Start Time:\t{format_time(started)}\n")
    if finished:
        w.write(0, f"Completed At:\t{format_time(finished)}\n")
    start_at, end_at = parse_time(started), parse_time(finished)
    if start_at is not None and end_at is not None:
        w.write(0, f"Duration:\t{human_duration(end_at - start_at)}\n")


async def describe_job(src: DescribeSource, job: Obj) -> str:
    job_spec, job_status, metadata = spec(job), status(job), meta(job)
    events = await src.events(job)
    w = PrefixWriter()
    w.write(0, f"Name:\t{metadata.get('name', '')}\n")
    w.write(0, f"Namespace:\t{metadata.get('namespace', '')}\n")
    w.write(0, f"Selector:\t{label_selector_text(job_spec.get('selector'))}\n")
    write_multiline_map(w, "Labels", metadata.get("labels"))
    write_annotations(w, "Annotations", metadata.get("annotations"))
    if controlled_by(job):
        w.write(0, f"Controlled By:\t{controlled_by(job)}\n")
    if job_spec.get("parallelism") is not None:
        w.write(0, f"Parallelism:\t{job_spec['parallelism']}\n")
    w.write(0, f"Completions:\t{job_spec.get('completions', UNSET)}\n")
    mode = job_spec.get("completionMode")
    if mode:
        w.write(0, f"Completion Mode:\t{mode}\n")
    if job_spec.get("suspend") is not None:
        w.write(0, f"Suspend:\t{go_bool(job_spec['suspend'])}\n")
    if job_spec.get("backoffLimit") is not None:
        w.write(0, f"Backoff Limit:\t{job_spec['backoffLimit']}\n")
    if job_spec.get("ttlSecondsAfterFinished") is not None:
        w.write(0, f"TTL Seconds After Finished:\t{job_spec['ttlSecondsAfterFinished']}\n")
    _write_job_times(w, job)
    if job_spec.get("activeDeadlineSeconds") is not None:
        w.write(0, f"Active Deadline Seconds:\t{job_spec['activeDeadlineSeconds']}s\n")
    active, succeeded, failed = (
        int(job_status.get(k) or 0) for k in ("active", "succeeded", "failed")
    )
    ready = job_status.get("ready")
    counts = f"{active} Active" + (f" ({ready} Ready)" if ready is not None else "")
    w.write(0, f"Pods Statuses:\t{counts} / {succeeded} Succeeded / {failed} Failed\n")
    if mode == "Indexed":
        w.write(0, f"Completed Indexes:\t{_capped(job_status.get('completedIndexes') or '')}\n")
    write_pod_template(w, job_spec.get("template"))
    write_events(w, src, events)
    return w.render()


def _write_job_template(w: PrefixWriter, template: Obj) -> None:
    job_spec = spec(template)
    selector = job_spec.get("selector")
    w.write(0, f"Selector:\t{label_selector_text(selector) if selector else UNSET}\n")
    w.write(0, f"Parallelism:\t{job_spec.get('parallelism', UNSET)}\n")
    w.write(0, f"Completions:\t{job_spec.get('completions', UNSET)}\n")
    if job_spec.get("activeDeadlineSeconds") is not None:
        w.write(0, f"Active Deadline Seconds:\t{job_spec['activeDeadlineSeconds']}s\n")
    write_pod_template(w, job_spec.get("template"))


async def describe_cron_job(src: DescribeSource, cron_job: Obj) -> str:
    cj_spec, cj_status, metadata = spec(cron_job), status(cron_job), meta(cron_job)
    events = await src.events(cron_job)
    w = PrefixWriter()
    w.write(0, f"Name:\t{metadata.get('name', '')}\n")
    w.write(0, f"Namespace:\t{metadata.get('namespace', '')}\n")
    write_multiline_map(w, "Labels", metadata.get("labels"))
    write_annotations(w, "Annotations", metadata.get("annotations"))
    w.write(0, f"Schedule:\t{cj_spec.get('schedule', '')}\n")
    if cj_spec.get("timeZone"):
        w.write(0, f"Time Zone:\t{cj_spec['timeZone']}\n")
    w.write(0, f"Concurrency Policy:\t{cj_spec.get('concurrencyPolicy', '')}\n")
    w.write(0, f"Suspend:\t{title_bool(cj_spec.get('suspend'))}\n")
    for title, field in (
        ("Successful Job History Limit", "successfulJobsHistoryLimit"),
        ("Failed Job History Limit", "failedJobsHistoryLimit"),
    ):
        w.write(0, f"{title}:\t{cj_spec.get(field, UNSET)}\n")
    deadline = cj_spec.get("startingDeadlineSeconds")
    w.write(0, f"Starting Deadline Seconds:\t{UNSET if deadline is None else f'{deadline}s'}\n")
    _write_job_template(w, cj_spec.get("jobTemplate") or {})
    last = cj_status.get("lastScheduleTime")
    w.write(0, f"Last Schedule Time:\t{format_time(last) if last else UNSET}\n")
    active = [str(ref.get("name", "")) for ref in cj_status.get("active") or []]
    w.write(0, f"Active Jobs:\t{', '.join(active) or '<none>'}\n")
    write_events(w, src, events)
    return w.render()
