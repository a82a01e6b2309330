"""``corral up --wait``: when workloads count as ready, what it prints, and when it gives up.

A fake client plays back one state of the cluster per poll; nothing runs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from corral import replication
from corral.api.errors import ApiError
from corral.api.resources import ResourceType
from corral.client.rest import ConnectionFailed
from corral.objects import Obj
from corralctl import readiness
from corralctl.manifests import Manifest


def deployment(
    name: str,
    replicas: int,
    ready: int,
    updated: int | None = None,
    generation: int = 1,
    observed: int = 1,
    namespace: str = "default",
) -> Obj:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
        },
    }


def rc(name: str, replicas: int | None, ready: int, namespace: str = "default") -> Obj:
    status: Obj = {"observedGeneration": 1}
    if ready:
        # The controller leaves zero counts out, as Kubernetes does.
        status["readyReplicas"] = ready
    spec: Obj = {} if replicas is None else {"replicas": replicas}
    return {
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": spec,
        "status": status,
    }


def pod(name: str, node: str | None, status: Obj) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": node} if node else {},
        "status": status,
    }


class FakeClient:
    """Each round of polls sees the next state; the last one stays."""

    def __init__(self, states: list[Obj | Exception], pods: list[Obj] | None = None) -> None:
        self.states = states
        self.pods = pods or []
        self.round = -1
        self.namespaces: list[str | None] = []

    def next_round(self) -> None:
        self.round = min(self.round + 1, len(self.states) - 1)

    async def list(self, rt: ResourceType, namespace: str | None = None) -> Obj:
        self.namespaces.append(namespace)
        if rt.plural == "pods":
            return {"items": self.pods}
        if rt.plural == "deployments":
            self.next_round()
        state = self.states[self.round]
        if isinstance(state, Exception):
            raise state
        return {"items": [o for o in state.get(rt.plural, []) if _ns(o) == namespace]}


def _ns(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace") or "default")


def state(*objects: Obj) -> Obj:
    plural = {"Deployment": "deployments", "ReplicationController": "replicationcontrollers"}
    out: dict[str, list[Obj]] = {}
    for obj in objects:
        out.setdefault(plural[obj["kind"]], []).append(obj)
    return out


class Ticks:
    def __init__(self, step: float = 1.0) -> None:
        self.now = 0.0
        self.step = step
        self.ticks = 0

    def clock(self) -> float:
        return self.now

    def tick(self) -> None:
        self.ticks += 1
        self.now += self.step


async def wait(client: FakeClient, timeout: float = 100, **kwargs: Any) -> tuple[bool, list[str]]:
    out = io.StringIO()
    ticks = Ticks()
    done = await readiness.wait_ready(
        client,
        kwargs.pop("namespaces", ["default"]),
        timeout,
        out=out,
        interval=0,
        tick=ticks.tick,
        clock=ticks.clock,
        **kwargs,
    )
    return done, out.getvalue().splitlines()


async def test_prints_a_line_whenever_counts_change_then_the_total() -> None:
    client = FakeClient(
        [
            state(deployment("mediawiki", 2, 0, updated=0), rc("website", 1, 0)),
            state(deployment("mediawiki", 2, 0, updated=0), rc("website", 1, 0)),
            state(deployment("mediawiki", 2, 1, updated=2), rc("website", 1, 0)),
            state(deployment("mediawiki", 2, 2), rc("website", 1, 1)),
        ]
    )
    done, lines = await wait(client)
    assert done
    assert lines == [
        "waiting for the workloads in default (up to 100s)",
        "  deployment/mediawiki 0/2 ready, 0/2 updated",
        "  replicationcontroller/website 0/1 ready",
        "  deployment/mediawiki 1/2 ready",
        "  deployment/mediawiki 2/2 ready",
        "  replicationcontroller/website 1/1 ready",
        "all 2 workloads ready in 3s",
    ]


async def test_a_deployment_needs_every_replica_updated_and_its_spec_observed() -> None:
    assert not readiness.workload("deployment", deployment("d", 2, 2, updated=1)).done
    assert not readiness.workload("deployment", deployment("d", 2, 2, generation=3)).done
    assert readiness.workload("deployment", deployment("d", 2, 2, generation=3, observed=3)).done
    # Old pods still ready next to the new ones are not "ready".
    assert not readiness.workload("deployment", deployment("d", 2, 3)).done
    # spec.replicas left out means one; a zero-replica workload is ready with none.
    assert not readiness.workload("replicationcontroller", rc("r", None, 0)).done
    assert readiness.workload("replicationcontroller", rc("r", None, 1)).done
    assert readiness.workload("replicationcontroller", rc("r", 0, 0)).done
    line = readiness.workload("deployment", deployment("d", 2, 1, generation=2)).line()
    assert line == "  deployment/d 1/2 ready, spec not yet seen by its controller"


async def test_transient_errors_are_retried() -> None:
    client = FakeClient(
        [
            ConnectionFailed("the connection to https://127.0.0.1:6443 was refused"),
            ApiError(503, "ServiceUnavailable", "etcd is not ready"),
            state(rc("website", 1, 1)),
        ]
    )
    done, lines = await wait(client)
    assert done
    assert lines[-2:] == [
        "  replicationcontroller/website 1/1 ready",
        "all 1 workloads ready in 2s",
    ]


async def test_on_timeout_it_says_what_is_not_ready_and_why() -> None:
    waiting = {
        "phase": "Pending",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {
                "name": "mediawiki",
                "ready": False,
                "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}},
            }
        ],
    }
    unscheduled = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory.",
            }
        ],
    }
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    client = FakeClient(
        [state(deployment("mediawiki", 2, 0, updated=2), rc("website", 1, 1))],
        pods=[
            pod("mediawiki-a", "sim-1", waiting),
            pod("mediawiki-b", None, unscheduled),
            pod("website-x", "sim-0", ready),
        ],
    )
    done, lines = await wait(client, timeout=5)
    assert not done
    at = lines.index("not ready after 5s:")
    assert lines[at:] == [
        "not ready after 5s:",
        "  deployment/mediawiki 0/2 ready",
        "pods not ready:",
        "  pod/mediawiki-a on sim-1: mediawiki: ErrImageNeverPull (not present)",
        "  pod/mediawiki-b on no node: unscheduled: 0/3 nodes are available: 3 Insufficient "
        "memory.",
    ]


async def test_stops_early_when_asked() -> None:
    client = FakeClient([state(rc("website", 1, 0))])
    calls: list[int] = []

    def stopping() -> bool:
        calls.append(1)
        return len(calls) > 3

    done, lines = await wait(client, stopping=stopping)
    assert not done
    assert "not ready after" not in "\n".join(lines)


async def test_every_applied_namespace_is_polled() -> None:
    client = FakeClient([state(rc("a", 1, 1), rc("b", 1, 1, namespace="shop"))])
    done, lines = await wait(client, namespaces=["default", "shop"])
    assert done
    assert "  replicationcontroller/b 1/1 ready (namespace shop)" in lines
    assert set(client.namespaces) == {"default", "shop"}


def test_applied_namespaces_come_from_the_manifests() -> None:
    def m(obj: Obj) -> Manifest:
        return Manifest(obj, "f.json")

    found = readiness.applied_namespaces(
        [
            m({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}),
            m({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            m(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "d", "namespace": "tools"},
                }
            ),
            # Cluster-scoped: no namespace of its own.
            m({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}),
        ]
    )
    assert found == ["default", "shop", "tools"]


def test_a_running_container_that_is_not_ready_says_so() -> None:
    problem: Callable[[Obj], str | None] = readiness.pod_problem
    assert (
        problem(
            {
                "status": {
                    "phase": "Running",
                    "containerStatuses": [
                        {"name": "db", "ready": False, "state": {"running": {}}},
                        {"name": "web", "ready": True, "state": {"running": {}}},
                    ],
                }
            }
        )
        == "db: running, not ready"
    )
    assert problem({"status": {"phase": "Succeeded"}}) is None
    assert problem({"status": {}}) == "phase Pending"


def labelled(obj: Obj, labels: dict[str, str]) -> Obj:
    if obj["kind"] == "Deployment":
        obj["spec"]["selector"] = {"matchLabels": labels}
    else:
        obj["spec"]["selector"] = labels
    return obj


def ready_pod(name: str, labels: dict[str, str], ready: bool = True, **meta: Any) -> Obj:
    return {
        "metadata": {"name": name, "labels": labels, **meta},
        "spec": {"nodeName": "sim-0"},
        "status": {"conditions": [{"type": "Ready", "status": str(ready)}]},
    }


async def test_a_status_from_before_a_restart_is_checked_against_the_pods() -> None:
    web = {"app": "web"}
    stale = state(labelled(rc("website", 2, 2), web))
    client = FakeClient(
        [stale],
        pods=[
            ready_pod("website-a", web),
            ready_pod("website-b", web, ready=False),
            # Another workload's pod, and one on its way out, count for nothing.
            ready_pod("other", {"app": "other"}),
            ready_pod("website-c", web, deletionTimestamp="2026-01-01T00:00:00Z"),
        ],
    )
    done, lines = await wait(client, timeout=3)
    assert not done
    assert lines[1] == "  replicationcontroller/website 1/2 ready"
    client.pods[1] = ready_pod("website-b", web)
    done, lines = await wait(client)
    assert done
    assert lines[1:] == ["  replicationcontroller/website 2/2 ready", "all 1 workloads ready in 0s"]


def test_a_selector_beyond_labels_is_not_counted_here() -> None:
    d = deployment("d", 1, 1)
    d["spec"]["selector"] = {"matchExpressions": [{"key": "a", "operator": "Exists"}]}
    assert readiness.workload("deployment", d, pods=[]).done


class FakePatcher:
    def __init__(self, pods: list[Obj], gone: frozenset[str] = frozenset()) -> None:
        self.pods = pods
        self.gone = gone
        self.patched: list[tuple[str, str, Obj, str | None]] = []
        self.selectors: list[str] = []

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        all_namespaces: bool = False,
        field_selector: str = "",
    ) -> Obj:
        assert all_namespaces and rt.plural == "pods"
        self.selectors.append(field_selector)
        node = field_selector.removeprefix("spec.nodeName=")
        return {"items": [p for p in self.pods if p["spec"]["nodeName"] == node]}

    async def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
    ) -> Obj:
        if name in self.gone:
            raise ApiError(404, "NotFound", f"pods {name!r} not found")
        self.patched.append((name, str(namespace), patch, subresource))
        return {}


async def test_pods_of_remade_hosts_are_marked_not_ready_until_their_agents_report() -> None:
    def on(node: str, name: str, ready: bool = True) -> Obj:
        pod = ready_pod(name, {}, ready=ready, namespace="shop", uid=f"uid-{name}")
        pod["spec"]["nodeName"] = node
        return pod

    client = FakePatcher(
        [on("sim-0", "a"), on("sim-0", "b", ready=False), on("sim-1", "c"), on("x", "d")],
        gone=frozenset({"c"}),
    )
    marked = await readiness.mark_not_ready(client, ["sim-0", "sim-1"], "2026-01-01T00:00:00Z")
    assert marked == 1
    assert client.selectors == ["spec.nodeName=sim-0", "spec.nodeName=sim-1"]
    assert client.patched == [
        (
            "a",
            "shop",
            {
                "metadata": {"uid": "uid-a"},
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                        }
                    ]
                },
            },
            "status",
        )
    ]


def test_a_replicated_set_is_ready_only_once_a_copy_is_labelled_primary() -> None:
    hooks = json.dumps(
        {
            "container": "db",
            "status": ["s"],
            "promote": ["p"],
            "demote": ["d"],
            "follow": ["f"],
            "rebuild": ["r"],
        }
    )
    sts = {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"annotations": {replication.HOOKS_ANNOTATION: hooks}}},
        },
        "status": {"observedGeneration": 1, "readyReplicas": 2},
    }
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}

    def copy(name: str, role: str | None) -> Obj:
        labels = {"app": "db", **({"role": role} if role else {})}
        return {"metadata": {"name": name, "labels": labels}, "status": ready}

    waiting = readiness.workload("statefulset", sts, [copy("db-0", None), copy("db-1", None)])
    assert not waiting.done
    assert "no primary yet" in waiting.line()
    elected = readiness.workload("statefulset", sts, [copy("db-0", "primary"), copy("db-1", None)])
    assert elected.done
    assert "primary elected" in elected.line()
