"""Changes in the cluster that may make a pod the scheduler rejected fit now.

Its own module, below the framework and the node cache alike: the cache
reports what changed on a node, and the framework's filters declare what
would change their minds.
"""

from __future__ import annotations

import enum


class ClusterEvent(enum.Flag):
    """Changes in the cluster that may make a rejected pod fit.

    A filter declares the ones that could turn its "no" into a "yes"; the
    queue retries a pod early only on those, and only once a check against
    the changed node says it may fit now.
    """

    NODE_ADDED = enum.auto()
    NODE_ALLOCATABLE_CHANGED = enum.auto()
    NODE_LABELS_CHANGED = enum.auto()
    NODE_TAINTS_CHANGED = enum.auto()
    NODE_SCHEDULABLE_CHANGED = enum.auto()
    NODE_CONDITION_CHANGED = enum.auto()
    # An assigned pod left its node: deleted, finished, or its assumption undone.
    POD_DELETED = enum.auto()


ANY_NODE_CHANGE = (
    ClusterEvent.NODE_ADDED
    | ClusterEvent.NODE_ALLOCATABLE_CHANGED
    | ClusterEvent.NODE_LABELS_CHANGED
    | ClusterEvent.NODE_TAINTS_CHANGED
    | ClusterEvent.NODE_SCHEDULABLE_CHANGED
    | ClusterEvent.NODE_CONDITION_CHANGED
)
