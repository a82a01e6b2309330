"""What a Terminating namespace's conditions say."""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.controllers.namespace import Remaining, namespace_conditions
from corral.clock import rfc3339

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_conditions_name_what_remains_and_keep_transition_times() -> None:
    remaining = Remaining(counts={"pods": 2}, finalizers={"example.com/hold": 1})
    conditions = {c["type"]: c for c in namespace_conditions(remaining, T0, [])}
    assert conditions["NamespaceContentRemaining"]["status"] == "True"
    assert conditions["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: pods has 2 resource instances"
    )
    assert conditions["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: "
        "example.com/hold in 1 resource instances"
    )
    assert conditions["NamespaceDeletionContentFailure"]["status"] == "False"
    later = datetime(2026, 1, 2, tzinfo=UTC)
    again = {
        c["type"]: c for c in namespace_conditions(remaining, later, list(conditions.values()))
    }
    assert again["NamespaceContentRemaining"]["lastTransitionTime"] == rfc3339(T0)
    done = {c["type"]: c for c in namespace_conditions(Remaining(), later, list(again.values()))}
    assert done["NamespaceContentRemaining"]["status"] == "False"
    assert done["NamespaceContentRemaining"]["lastTransitionTime"] == rfc3339(later)
    assert not Remaining()
