"""``corral describe ds``: kubectl 1.32's DaemonSet layout, whole."""

from __future__ import annotations

from corral.objects import Obj
from tests.unit.cli.test_describe import FakeClient, ago, run_describe, utc

__all__ = ["utc"]  # The fixture pins TZ, so the layouts' times read the same everywhere.

DAEMON_SET: Obj = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {
        "name": "agent",
        "namespace": "default",
        "uid": "uid-ds",
        "labels": {"app": "agent"},
        "creationTimestamp": ago(hours=1),
    },
    "spec": {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {
            "metadata": {"labels": {"app": "agent"}},
            "spec": {
                "nodeSelector": {"role": "edge"},
                "containers": [{"name": "agent", "image": "busybox:1.36"}],
            },
        },
    },
    "status": {
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 3,
        "updatedNumberScheduled": 2,
        "numberAvailable": 1,
        "numberMisscheduled": 0,
        "numberReady": 1,
    },
}


def daemon_pod(name: str, phase: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "labels": {"app": "agent"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": "agent",
                    "uid": "uid-ds",
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "agent", "image": "busybox:1.36"}]},
        "status": {"phase": phase},
    }


def test_daemon_set() -> None:
    client = FakeClient(
        DAEMON_SET,
        daemon_pod("agent-a", "Running"),
        daemon_pod("agent-b", "Running"),
        daemon_pod("agent-c", "Pending"),
    )
    code, out, err = run_describe(client, "ds", "agent")
    assert (code, err) == (0, "")
    assert out == (
        "Name:           agent\n"
        "Namespace:      default\n"
        "Selector:       app=agent\n"
        "Node-Selector:  role=edge\n"
        "Labels:         app=agent\n"
        "Annotations:    <none>\n"
        "Desired Number of Nodes Scheduled: 3\n"
        "Current Number of Nodes Scheduled: 3\n"
        "Number of Nodes Scheduled with Up-to-date Pods: 2\n"
        "Number of Nodes Scheduled with Available Pods: 1\n"
        "Number of Nodes Misscheduled: 0\n"
        "Pods Status:  2 Running / 1 Waiting / 0 Succeeded / 0 Failed\n"
        "Pod Template:\n"
        "  Labels:  app=agent\n"
        "  Containers:\n"
        "   agent:\n"
        "    Image:         busybox:1.36\n"
        "    Port:          <none>\n"
        "    Host Port:     <none>\n"
        "    Environment:   <none>\n"
        "    Mounts:        <none>\n"
        "  Volumes:         <none>\n"
        "  Node-Selectors:  role=edge\n"
        "  Tolerations:     <none>\n"
        "Events:            <none>\n"
    )
