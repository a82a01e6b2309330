"""DaemonSets, as ``pkg/apis/apps/validation`` (``ValidateDaemonSet``) checks them."""

from __future__ import annotations

from corral.api.apps import DaemonSet, DaemonSetUpdateStrategy
from corral.api.errors import Cause
from corral.api.validate.common import (
    as_matcher,
    int_or_percent,
    non_negative,
    not_more_than_100_percent,
    percent_value,
    selector_is_empty,
    validate_label_selector,
)
from corral.api.validate.field import Raw, invalid
from corral.api.validate.workloads import _selector_update, _template_for_replicas


def _update_strategy(strategy: DaemonSetUpdateStrategy) -> list[Cause]:
    rolling = strategy.rolling_update
    if strategy.type != "RollingUpdate" or rolling is None:
        return []
    path = "spec.updateStrategy.rollingUpdate"
    unavailable = rolling.max_unavailable if rolling.max_unavailable is not None else 1
    surge = rolling.max_surge if rolling.max_surge is not None else 0
    causes = int_or_percent(unavailable, f"{path}.maxUnavailable")
    causes.extend(not_more_than_100_percent(unavailable, f"{path}.maxUnavailable"))
    causes.extend(int_or_percent(surge, f"{path}.maxSurge"))
    causes.extend(not_more_than_100_percent(surge, f"{path}.maxSurge"))
    if percent_value(unavailable)[0] == 0 and percent_value(surge)[0] == 0:
        causes.append(
            invalid(
                f"{path}.maxUnavailable",
                Raw(str(unavailable)),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    return causes


def validate_daemon_set(ds: DaemonSet) -> list[Cause]:
    spec = ds.spec
    causes = validate_label_selector(spec.selector, "spec.selector")
    if selector_is_empty(spec.selector):
        causes.append(
            invalid("spec.selector", spec.selector, "empty selector is invalid for daemonset")
        )
    matcher = as_matcher(spec.selector)
    if matcher is None:
        causes.append(invalid("spec.selector", spec.selector, "invalid label selector"))
    else:
        causes.extend(_template_for_replicas(spec.template, matcher, "DaemonSet", "spec.template"))
    causes.extend(non_negative(spec.min_ready_seconds, "spec.minReadySeconds"))
    causes.extend(non_negative(spec.revision_history_limit, "spec.revisionHistoryLimit"))
    causes.extend(_update_strategy(spec.update_strategy))
    return causes


def validate_daemon_set_update(new: DaemonSet, old: DaemonSet) -> list[Cause]:
    return _selector_update(new.spec.selector, old.spec.selector)
