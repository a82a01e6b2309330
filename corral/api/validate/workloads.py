"""ReplicationControllers, ReplicaSets and Deployments."""

from __future__ import annotations

from corral.api import labels as labelsel
from corral.api.apps import Deployment, DeploymentStrategy, ReplicaSet
from corral.api.core import PodTemplateSpec, ReplicationController
from corral.api.errors import Cause
from corral.api.meta import LabelSelector
from corral.api.validate.common import (
    as_matcher,
    int_or_percent,
    non_negative,
    not_more_than_100_percent,
    percent_value,
    selector_is_empty,
    selector_wire,
    validate_label_selector,
)
from corral.api.validate.field import (
    IMMUTABLE,
    Raw,
    child,
    forbidden,
    invalid,
    not_supported,
    required,
)
from corral.api.validate.pods import validate_pod_template

SELECTOR_MISMATCH = "`selector` does not match template `labels`"
# What Kubernetes defaults maxSurge and maxUnavailable to.
_DEFAULT_ROLLING = "25%"


def _template_labels(template: PodTemplateSpec) -> dict[str, str]:
    return (template.metadata.labels if template.metadata else None) or {}


def _template_for_replicas(
    template: PodTemplateSpec | None,
    matcher: labelsel.LabelSelector,
    owner: str,
    path: str,
) -> list[Cause]:
    """``ValidatePodTemplateSpecForRC`` / ``ValidatePodTemplateSpecForReplicaSet``."""
    if template is None:
        return [required(path)]
    causes: list[Cause] = []
    labels = _template_labels(template)
    if not matcher.is_empty() and not matcher.matches(labels):
        causes.append(invalid(child(f"{path}.metadata", "labels"), labels, SELECTOR_MISMATCH))
    causes.extend(validate_pod_template(template, path))
    spec = template.spec
    if spec is not None:
        spec_path = f"{path}.spec"
        if spec.restart_policy != "Always":
            causes.append(
                not_supported(f"{spec_path}.restartPolicy", spec.restart_policy, ("Always",))
            )
        if spec.active_deadline_seconds is not None:
            causes.append(
                forbidden(
                    f"{spec_path}.activeDeadlineSeconds",
                    f"activeDeadlineSeconds in {owner} is not Supported",
                )
            )
    return causes


def validate_replication_controller(rc: ReplicationController) -> list[Cause]:
    spec = rc.spec
    causes = non_negative(spec.min_ready_seconds, "spec.minReadySeconds")
    # Kubernetes defaults an empty selector to the template's labels.
    selector = spec.selector or (_template_labels(spec.template) if spec.template else {})
    if not selector:
        causes.append(required("spec.selector"))
    causes.extend(non_negative(spec.replicas, "spec.replicas"))
    try:
        matcher = labelsel.selector_from_set(selector)
    except labelsel.SelectorError:
        # Not a selector anything can match; the labels check reports why.
        matcher = labelsel.EVERYTHING
    causes.extend(
        _template_for_replicas(spec.template, matcher, "ReplicationController", "spec.template")
    )
    return causes


def _selector(selector: LabelSelector) -> tuple[list[Cause], labelsel.LabelSelector | None]:
    causes = validate_label_selector(selector, "spec.selector")
    if selector_is_empty(selector):
        # Kubernetes words this the same for ReplicaSets.
        causes.append(
            invalid("spec.selector", selector, "empty selector is invalid for deployment")
        )
    matcher = as_matcher(selector)
    if matcher is None:
        causes.append(invalid("spec.selector", selector, "invalid label selector"))
    return causes, matcher


def validate_replica_set(rs: ReplicaSet) -> list[Cause]:
    spec = rs.spec
    causes = non_negative(spec.replicas, "spec.replicas")
    causes.extend(non_negative(spec.min_ready_seconds, "spec.minReadySeconds"))
    selector_causes, matcher = _selector(spec.selector)
    causes.extend(selector_causes)
    if matcher is not None:
        causes.extend(_template_for_replicas(spec.template, matcher, "ReplicaSet", "spec.template"))
    return causes


def validate_deployment(deploy: Deployment) -> list[Cause]:
    spec = deploy.spec
    causes = non_negative(spec.replicas, "spec.replicas")
    selector_causes, matcher = _selector(spec.selector)
    causes.extend(selector_causes)
    if matcher is not None:
        # Kubernetes validates a Deployment's template as a ReplicaSet's, words included.
        causes.extend(_template_for_replicas(spec.template, matcher, "ReplicaSet", "spec.template"))
    causes.extend(_strategy(spec.strategy, "spec.strategy"))
    min_ready = spec.min_ready_seconds or 0
    causes.extend(non_negative(spec.min_ready_seconds, "spec.minReadySeconds"))
    causes.extend(non_negative(spec.revision_history_limit, "spec.revisionHistoryLimit"))
    deadline = spec.progress_deadline_seconds
    causes.extend(non_negative(deadline, "spec.progressDeadlineSeconds"))
    if deadline <= min_ready:
        causes.append(
            invalid(
                "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
            )
        )
    return causes


def _strategy(strategy: DeploymentStrategy, path: str) -> list[Cause]:
    rolling = strategy.rolling_update
    rolling_path = f"{path}.rollingUpdate"
    if strategy.type == "Recreate":
        if rolling is not None:
            return [
                forbidden(rolling_path, "may not be specified when strategy `type` is 'Recreate'")
            ]
        return []
    if rolling is None:
        # Defaulted to 25%/25%, which is valid.
        return []
    unavailable = (
        rolling.max_unavailable if rolling.max_unavailable is not None else _DEFAULT_ROLLING
    )
    surge = rolling.max_surge if rolling.max_surge is not None else _DEFAULT_ROLLING
    unavailable_path = f"{rolling_path}.maxUnavailable"
    causes = int_or_percent(unavailable, unavailable_path)
    causes.extend(int_or_percent(surge, f"{rolling_path}.maxSurge"))
    if percent_value(unavailable)[0] == 0 and percent_value(surge)[0] == 0:
        causes.append(
            invalid(unavailable_path, Raw(str(unavailable)), "may not be 0 when `maxSurge` is 0")
        )
    causes.extend(not_more_than_100_percent(unavailable, unavailable_path))
    return causes


def _selector_update(new: LabelSelector, old: LabelSelector) -> list[Cause]:
    # apps/v1 selectors are immutable: changing one would orphan the pods.
    if selector_wire(new) != selector_wire(old):
        return [invalid("spec.selector", new, IMMUTABLE)]
    return []


def validate_replica_set_update(new: ReplicaSet, old: ReplicaSet) -> list[Cause]:
    return _selector_update(new.spec.selector, old.spec.selector)


def validate_deployment_update(new: Deployment, old: Deployment) -> list[Cause]:
    return _selector_update(new.spec.selector, old.spec.selector)
