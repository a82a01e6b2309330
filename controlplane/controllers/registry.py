"""The controllers the controller manager can run, by name."""

from __future__ import annotations

from collections.abc import Callable

from controlplane.controllers.base import Context, Controller
from controlplane.controllers.cronjob import CronJobController
from controlplane.controllers.daemonset import DaemonSetController
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.disruption import DisruptionController
from controlplane.controllers.endpoints import EndpointsController
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.job import JobController
from controlplane.controllers.namespace import NamespaceController
from controlplane.controllers.nodelifecycle import NodeLifecycleController, TaintEvictionController
from controlplane.controllers.persistentvolume import PersistentVolumeController
from controlplane.controllers.replicatedset import ReplicatedSetController
from controlplane.controllers.replication import replica_set, replication_controller
from controlplane.controllers.statefulset import StatefulSetController
from controlplane.controllers.volumeprotection import VolumeProtectionController

ControllerFactory = Callable[[Context], Controller]

CONTROLLERS: dict[str, ControllerFactory] = {
    "replicationcontroller": replication_controller,
    "replicaset": replica_set,
    "garbagecollector": GarbageCollector,
    "namespace": NamespaceController,
    "endpoints": EndpointsController,
    "nodelifecycle": NodeLifecycleController,
    "taint-eviction": TaintEvictionController,
    "disruption": DisruptionController,
    "deployment": DeploymentController,
    "persistentvolume-binder": PersistentVolumeController,
    "volume-protection": VolumeProtectionController,
    "statefulset": StatefulSetController,
    "daemonset": DaemonSetController,
    "replicatedset": ReplicatedSetController,
    "job": JobController,
    "cronjob": CronJobController,
}
