"""Query parameters, parsed into typed options; a bad one is a 400 naming it.

Every function here reads the request's one parsed ``Query`` (query.py), the
same object authorization read, so a handler cannot serve something other
than what was authorized.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

import orjson

from controlplane.query import TRUE, Query
from corral.api import errors
from corral.api.decode import FIELD_VALIDATION_MODES, FieldValidation
from corral.api.errors import Cause
from corral.api.fields import FieldSelector, parse_field_selector
from corral.api.labels import LabelSelector, SelectorError, parse_label_selector


def _bad(param: str, message: str) -> errors.ApiError:
    return errors.bad_request(
        f"invalid query parameter {param}: {message}",
        [Cause("FieldValueInvalid", message, param)],
    )


_INT64_MAX = 2**63 - 1


def _int(params: Query, name: str, minimum: int = 0) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f'"{raw}" is not an integer') from None
    if value < minimum:
        raise _bad(name, f"must be at least {minimum}")
    if value > _INT64_MAX:
        # Kubernetes' query integers are int64; larger ones cannot reach etcd.
        raise _bad(name, f'"{raw}" is out of range for a 64-bit integer')
    return value


def dry_run(params: Query) -> bool:
    values = params.getlist("dryRun")
    for value in values:
        if value != "All":
            raise _bad("dryRun", f'unsupported value "{value}": supported values: "All"')
    return bool(values)


def field_validation(params: Query) -> FieldValidation:
    raw = params.get("fieldValidation") or "Strict"
    if raw not in FIELD_VALIDATION_MODES:
        raise _bad(
            "fieldValidation",
            f'unsupported value "{raw}": supported values: "Strict", "Warn", "Ignore"',
        )
    return raw


@dataclass(frozen=True, slots=True)
class Continue:
    revision: int
    start: str  # the key to resume at, relative to the listed prefix


def encode_continue(revision: int, start: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(token).decode()


def decode_continue(token: str) -> Continue:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        revision = int(data["rv"])
        start = str(data["start"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise _bad("continue", "the continue token is malformed") from None
    if revision <= 0 or start.startswith("/") or ".." in start.split("/"):
        raise _bad("continue", "the continue token is malformed")
    return Continue(revision, start)


@dataclass(frozen=True, slots=True)
class ListOptions:
    labels: LabelSelector | None
    fields: FieldSelector | None
    resource_version: str
    resource_version_match: Literal["", "Exact", "NotOlderThan"]
    limit: int
    continue_: Continue | None
    watch: bool
    allow_bookmarks: bool
    timeout_seconds: int | None
    send_initial_events: bool | None
    include_object: Literal["None", "Metadata", "Object"]

    @classmethod
    def parse(cls, params: Query) -> ListOptions:
        label_text = params.text("labelSelector")
        field_text = params.text("fieldSelector")
        try:
            labels = parse_label_selector(label_text) if label_text else None
        except SelectorError as error:
            raise _bad("labelSelector", str(error)) from None
        try:
            fields = parse_field_selector(field_text) if field_text else None
        except SelectorError as error:
            raise _bad("fieldSelector", str(error)) from None
        match = params.text("resourceVersionMatch")
        if match not in ("", "Exact", "NotOlderThan"):
            raise _bad(
                "resourceVersionMatch",
                f'unsupported value "{match}": supported values: "Exact", "NotOlderThan"',
            )
        resource_version = params.text("resourceVersion")
        if resource_version not in ("",) and (
            not resource_version.isdigit() or int(resource_version) > _INT64_MAX
        ):
            raise _bad("resourceVersion", f'"{resource_version}" is not a valid resource version')
        if match and not resource_version:
            raise _bad("resourceVersionMatch", "requires resourceVersion to be set")
        token = params.text("continue")
        continue_ = decode_continue(token) if token else None
        if continue_ is not None and resource_version not in ("", "0"):
            raise _bad(
                "resourceVersion", "specifying resource version is not allowed when using continue"
            )
        initial = params.get("sendInitialEvents")
        include = params.text("includeObject") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise _bad("includeObject", f'unsupported value "{include}"')
        return cls(
            labels=labels,
            fields=fields,
            resource_version=resource_version,
            resource_version_match=match,  # type: ignore[arg-type]
            limit=_int(params, "limit") or 0,
            continue_=continue_,
            watch=params.flag("watch"),
            allow_bookmarks=params.flag("allowWatchBookmarks"),
            timeout_seconds=_int(params, "timeoutSeconds"),
            send_initial_events=None if initial is None else initial.lower() in TRUE,
            include_object=include,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class DeleteParams:
    grace_period_seconds: int | None
    propagation_policy: str | None
    dry_run: bool

    @classmethod
    def parse(cls, params: Query) -> DeleteParams:
        policy = params.get("propagationPolicy")
        if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
            raise _bad(
                "propagationPolicy",
                f'unsupported value "{policy}": supported values: "Orphan", "Background", '
                '"Foreground"',
            )
        orphan = params.get("orphanDependents")
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan.lower() in TRUE else "Background"
        return cls(
            grace_period_seconds=_int(params, "gracePeriodSeconds"),
            propagation_policy=policy,
            dry_run=dry_run(params),
        )
