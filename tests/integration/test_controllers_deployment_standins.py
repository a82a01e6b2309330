"""Stand-ins for the parts of the cluster the Deployment tests need but do not test.

- ``node_agent``: the node agent's part. Pods are reported Running, and
  Ready, unless ``ready`` says a pod never will be (a "bad image", by
  default any image starting with ``bad``). Graceful deletions are
  confirmed. The ReplicaSet and ReplicationController controllers that
  create and delete the pods are the real ones (``replication.py``), and
  so is the disruption controller.
- ``AvailabilitySampler``: the tests' own eyes; the fewest Ready pods seen
  at any moment.
- ``cli``: the CLI's commands, run in-process against the test cluster.

(This module holds no tests; it is named so that it sits with the tests
that import it.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from corral.api.errors import ApiError
from corral.client.rest import Client
from corral.clock import Clock, SystemClock
from corral.informer import Informer, wait_synced
from corral.objects import Obj
from corralctl import rolling_update, rollout, setimage
from corralctl.context import CliContext
from corralctl.main import common_options
from tests.conftest import LocalCluster
from tests.integration.test_controllers_harness import (
    DEPLOYMENTS,
    PODS,
    confirm_deletion,
    set_ready,
)


def images(pod: Obj) -> list[str]:
    return [str(c.get("image", "")) for c in (pod.get("spec") or {}).get("containers") or []]


def good_image(pod: Obj) -> bool:
    return not any(image.startswith("bad") for image in images(pod))


def is_ready(pod: Obj) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def is_active(pod: Obj) -> bool:
    return not (pod.get("metadata") or {}).get("deletionTimestamp")


@contextlib.asynccontextmanager
async def node_agent(
    client: Client,
    namespace: str,
    *,
    ready: Callable[[Obj], bool] = good_image,
    clock: Clock | None = None,
) -> AsyncIterator[None]:
    """Play every node agent of one namespace: pods run, and are Ready if ``ready(pod)``."""
    informer = Informer(client, PODS, namespace=namespace)
    pending: set[asyncio.Task[None]] = set()
    addresses: dict[str, str] = {}

    async def act(pod: Obj) -> None:
        try:
            if not is_active(pod):
                await confirm_deletion(client, pod)
            elif (pod.get("status") or {}).get("phase") != "Running":
                n = addresses.setdefault(pod["metadata"]["uid"], str(len(addresses)))
                ip = f"10.251.{int(n) // 250}.{int(n) % 250 + 1}"
                await set_ready(client, pod, ip, ready=ready(pod), clock=clock)
        except ApiError as error:
            if error.code not in (404, 409):
                raise

    def react(pod: Obj) -> None:
        task = asyncio.ensure_future(act(pod))
        pending.add(task)
        task.add_done_callback(pending.discard)

    informer.add_handlers(on_add=react, on_update=lambda _old, new: react(new))
    stop = asyncio.Event()
    task = asyncio.create_task(informer.run(stop))
    try:
        await wait_synced([informer], 10)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        if pending:
            await asyncio.wait(pending, timeout=10)


@dataclass
class AvailabilitySampler:
    """The fewest Ready, non-terminating pods matching ``labels`` at any moment seen."""

    client: Client
    namespace: str
    labels: dict[str, str]
    fewest: int | None = None
    samples: int = 0
    _informer: Informer | None = field(default=None, init=False)

    def _sample(self) -> None:
        assert self._informer is not None
        ready = sum(
            1
            for p in self._informer.items()
            if is_active(p)
            and is_ready(p)
            and self.labels.items() <= (p["metadata"].get("labels") or {}).items()
        )
        self.samples += 1
        self.fewest = ready if self.fewest is None else min(self.fewest, ready)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[AvailabilitySampler]:
        self._informer = Informer(self.client, PODS, namespace=self.namespace)
        stop = asyncio.Event()
        task = asyncio.create_task(self._informer.run(stop))
        await wait_synced([self._informer], 10)
        self._informer.add_handlers(
            on_add=lambda _o: self._sample(),
            on_update=lambda _a, _b: self._sample(),
            on_delete=lambda _o: self._sample(),
        )
        self._sample()
        try:
            yield self
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


# --- manifests and checks ---------------------------------------------------------------------


def deployment(
    name: str = "web",
    replicas: int = 3,
    image: str = "nginx:1",
    *,
    surge: int | str = "25%",
    unavailable: int | str = "25%",
    strategy: str = "RollingUpdate",
    deadline: int = 600,
    min_ready: int | None = None,
    history: int | None = None,
    annotations: dict[str, str] | None = None,
) -> Obj:
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [{"name": "app", "image": image}],
                "terminationGracePeriodSeconds": 0,
            },
        },
        "strategy": {"type": strategy},
        "progressDeadlineSeconds": deadline,
    }
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    if min_ready is not None:
        spec["minReadySeconds"] = min_ready
    if history is not None:
        spec["revisionHistoryLimit"] = history
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
    }


async def set_image(client: Client, namespace: str, name: str, image: str) -> None:
    await client.patch(
        DEPLOYMENTS,
        name,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}},
        namespace,
        patch_type="strategic",
    )


def condition(d: Obj, kind: str = "Progressing") -> Obj:
    for found in (d.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            result: Obj = found
            return result
    return {}


async def rolled_out(client: Client, namespace: str, name: str = "web") -> bool:
    """What ``rollout status`` calls done: every replica updated and available, none old."""
    d = await client.get(DEPLOYMENTS, name, namespace)
    try:
        return rollout.status_line(d)[1]
    except rollout.RolloutFailed:
        return False


# --- the CLI, in-process ----------------------------------------------------------------------


@dataclass
class Cli:
    ctx: CliContext
    out: io.StringIO
    err: io.StringIO

    async def __call__(self, *argv: str) -> int:
        root = argparse.ArgumentParser(prog="corral")
        sub = root.add_subparsers(dest="command", required=True)
        rollout.add_parser(sub, common_options())
        rolling_update.add_parser(sub, common_options())
        setimage.add_parsers(sub, common_options())
        args = root.parse_args(list(argv))
        code: int = await args.func(self.ctx, args)
        return code

    def take(self) -> tuple[str, str]:
        """What was printed since the last call, to stdout and to stderr."""
        out, err = self.out.getvalue(), self.err.getvalue()
        for stream in (self.out, self.err):
            stream.seek(0)
            stream.truncate()
        return out, err


@contextlib.asynccontextmanager
async def cli(
    cluster: LocalCluster, namespace: str, clock: Clock | None = None
) -> AsyncIterator[Cli]:
    out, err = io.StringIO(), io.StringIO()
    ctx = CliContext(
        config=cluster.client_config(namespace),
        namespace=namespace,
        namespace_explicit=True,
        clock=clock or SystemClock(),
        out=out,
        err=err,
    )
    try:
        yield Cli(ctx, out, err)
    finally:
        await ctx.close()
