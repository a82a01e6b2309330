"""StatefulSets and ControllerRevisions, as ``pkg/apis/apps/validation`` checks them.

A StatefulSet's pod template may mount volumes it does not declare: the
controller adds one per ``volumeClaimTemplates`` entry. Kubernetes skips
the template's pod spec validation for that reason; corral validates it
with those volumes counted in, so every other mistake is still reported.
"""

from __future__ import annotations

from corral.api import labels as labelsel
from corral.api.apps import (
    ControllerRevision,
    PersistentVolumeClaimTemplate,
    StatefulSet,
    StatefulSetUpdateStrategy,
)
from corral.api.core import EmptyDirVolumeSource, PodTemplateSpec, Volume
from corral.api.errors import Cause
from corral.api.validate.common import (
    as_matcher,
    dns_label,
    int_or_percent,
    non_negative,
    not_more_than_100_percent,
    percent_value,
    selector_is_empty,
    validate_label_selector,
)
from corral.api.validate.field import (
    IMMUTABLE,
    Raw,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from corral.api.validate.pods import validate_pod_template

SELECTOR_MISMATCH = "`selector` does not match template `labels`"
# The only spec fields an update may change, in Kubernetes' words.
UPDATABLE = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
    "and 'minReadySeconds' are forbidden"
)
_ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def _with_claim_volumes(
    template: PodTemplateSpec, claims: list[PersistentVolumeClaimTemplate]
) -> PodTemplateSpec:
    """The template as its pods will be: with a volume standing in for each claim."""
    if template.spec is None or not claims:
        return template
    declared = {v.name for v in template.spec.volumes or ()}
    extra = [
        Volume(name=c.metadata.name, empty_dir=EmptyDirVolumeSource())
        for c in claims
        if c.metadata.name and c.metadata.name not in declared
    ]
    if not extra:
        return template
    spec = template.spec.model_copy(update={"volumes": [*(template.spec.volumes or ()), *extra]})
    return template.model_copy(update={"spec": spec})


def _template(
    template: PodTemplateSpec,
    claims: list[PersistentVolumeClaimTemplate],
    matcher: labelsel.LabelSelector,
) -> list[Cause]:
    path = "spec.template"
    labels = (template.metadata.labels if template.metadata else None) or {}
    causes: list[Cause] = []
    if not matcher.is_empty() and not matcher.matches(labels):
        causes.append(invalid(f"{path}.metadata.labels", labels, SELECTOR_MISMATCH))
    causes.extend(validate_pod_template(_with_claim_volumes(template, claims), path))
    spec = template.spec
    if spec is not None:
        if spec.restart_policy != "Always":
            causes.append(
                not_supported(f"{path}.spec.restartPolicy", spec.restart_policy, ("Always",))
            )
        if spec.active_deadline_seconds is not None:
            causes.append(
                forbidden(
                    f"{path}.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in StatefulSet is not Supported",
                )
            )
    return causes


def _claim_templates(claims: list[PersistentVolumeClaimTemplate]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, claim in enumerate(claims):
        path = f"spec.volumeClaimTemplates[{i}]"
        name = claim.metadata.name or ""
        if not name:
            causes.append(required(f"{path}.metadata.name"))
        else:
            causes.extend(dns_label(name, f"{path}.metadata.name"))
            if name in seen:
                causes.append(duplicate(f"{path}.metadata.name", name))
            seen.add(name)
        modes = claim.spec.access_modes or []
        if not modes:
            causes.append(
                required(f"{path}.spec.accessModes", "at least 1 access mode is required")
            )
        for j, mode in enumerate(modes):
            if mode not in _ACCESS_MODES:
                causes.append(not_supported(f"{path}.spec.accessModes[{j}]", mode, _ACCESS_MODES))
        requests = (claim.spec.resources.requests if claim.spec.resources else None) or {}
        if "storage" not in requests:
            causes.append(required(f"{path}.spec.resources[storage]"))
    return causes


def _update_strategy(strategy: StatefulSetUpdateStrategy) -> list[Cause]:
    path = "spec.updateStrategy"
    rolling = strategy.rolling_update
    if strategy.type == "OnDelete":
        if rolling is not None:
            return [
                invalid(
                    f"{path}.rollingUpdate",
                    Raw("{...}"),
                    "only allowed for updateStrategy 'RollingUpdate'",
                )
            ]
        return []
    if rolling is None:
        return []
    causes = non_negative(rolling.partition, f"{path}.rollingUpdate.partition")
    if rolling.max_unavailable is not None:
        unavailable_path = f"{path}.rollingUpdate.maxUnavailable"
        value = rolling.max_unavailable
        causes.extend(int_or_percent(value, unavailable_path))
        if percent_value(value)[0] == 0:
            causes.append(invalid(unavailable_path, Raw(str(value)), "must be greater than 0"))
        causes.extend(not_more_than_100_percent(value, unavailable_path))
    return causes


def validate_stateful_set(sts: StatefulSet) -> list[Cause]:
    spec = sts.spec
    causes = non_negative(spec.replicas, "spec.replicas")
    causes.extend(non_negative(spec.min_ready_seconds, "spec.minReadySeconds"))
    causes.extend(non_negative(spec.revision_history_limit, "spec.revisionHistoryLimit"))
    if spec.ordinals is not None:
        causes.extend(non_negative(spec.ordinals.start, "spec.ordinals.start"))
    if spec.service_name:
        # It becomes every pod's ``subdomain``: a DNS label.
        causes.extend(dns_label(spec.service_name, "spec.serviceName"))
    causes.extend(_update_strategy(spec.update_strategy))
    claims = spec.volume_claim_templates or []
    causes.extend(_claim_templates(claims))
    causes.extend(validate_label_selector(spec.selector, "spec.selector"))
    if selector_is_empty(spec.selector):
        causes.append(
            invalid("spec.selector", spec.selector, "empty selector is invalid for statefulset")
        )
        return causes
    matcher = as_matcher(spec.selector)
    if matcher is None:
        causes.append(invalid("spec.selector", spec.selector, "invalid label selector"))
        return causes
    causes.extend(_template(spec.template, claims, matcher))
    return causes


def _frozen(spec_dict: dict[str, object]) -> dict[str, object]:
    mutable = {
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    }
    return {k: v for k, v in spec_dict.items() if k not in mutable}


def validate_stateful_set_update(new: StatefulSet, old: StatefulSet) -> list[Cause]:
    """``ValidateStatefulSetUpdate``: the fields that give pods their identity stay put."""
    before = _frozen(old.spec.model_dump(by_alias=True, exclude_none=True))
    after = _frozen(new.spec.model_dump(by_alias=True, exclude_none=True))
    if before == after:
        return []
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return [forbidden("spec", f"{UPDATABLE} (changed: {', '.join(changed)})")]


def validate_controller_revision(revision: ControllerRevision) -> list[Cause]:
    causes = non_negative(revision.revision, "revision")
    if revision.data is None:
        causes.append(required("data"))
    return causes


def validate_controller_revision_update(
    new: ControllerRevision, old: ControllerRevision
) -> list[Cause]:
    # A revision is a snapshot: only its metadata (owners, labels) may change.
    if new.data != old.data:
        return [invalid("data", Raw("{...}"), IMMUTABLE)]
    return []
