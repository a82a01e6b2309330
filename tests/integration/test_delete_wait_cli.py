"""``corral delete --wait``: it returns once the object is gone, and gives up at --timeout.

Against the session's real API server: a finalizer holds an object after
its deletion until the test removes it, as a controller would.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time

from corral.client.rest import Client
from corral.clock import SystemClock
from corralctl import write
from corralctl.context import CliContext
from corralctl.main import common_options
from tests.conftest import LocalCluster
from tests.integration.test_controllers_harness import CONFIGMAPS

HOLD = "corral.test/hold"


def config_map(name: str, *finalizers: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "finalizers": list(finalizers)},
        "data": {"k": "v"},
    }


async def delete(cluster: LocalCluster, namespace: str, *argv: str) -> tuple[int, str, str]:
    root = argparse.ArgumentParser(prog="corral")
    write.add_parsers(root.add_subparsers(dest="command", required=True), common_options())
    args = root.parse_args(["delete", *argv])
    out, err = io.StringIO(), io.StringIO()
    ctx = CliContext(
        config=cluster.client_config(namespace),
        namespace=namespace,
        namespace_explicit=True,
        clock=SystemClock(),
        out=out,
        err=err,
    )
    try:
        code: int = await args.func(ctx, args)
    finally:
        await ctx.close()
    return code, out.getvalue(), err.getvalue()


async def release(client: Client, namespace: str, name: str) -> None:
    await client.patch(CONFIGMAPS, name, {"metadata": {"finalizers": None}}, namespace)


async def test_it_waits_until_the_object_is_gone(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    await client.create(CONFIGMAPS, config_map("held", HOLD), namespace)
    deleting = asyncio.create_task(delete(cluster, namespace, "configmap", "held"))
    await asyncio.sleep(1.0)
    # Still held by its finalizer: the command must still be waiting.
    assert not deleting.done()
    await release(client, namespace, "held")
    code, out, err = await asyncio.wait_for(deleting, 30)
    assert (code, err) == (0, "")
    assert out == 'configmap "held" deleted\n'


async def test_it_gives_up_at_the_timeout_and_names_what_is_left(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    await client.create(CONFIGMAPS, config_map("stuck", HOLD), namespace)
    await client.create(CONFIGMAPS, config_map("free"), namespace)
    started = time.monotonic()
    code, out, err = await delete(
        cluster, namespace, "configmap", "stuck", "free", "--timeout", "1.5"
    )
    took = time.monotonic() - started
    assert code == 1
    assert out == 'configmap "stuck" deleted\nconfigmap "free" deleted\n'
    assert err == 'error: timed out waiting for configmap "stuck" to be deleted\n'
    # Bounded: the deadline, plus at most one pause of a second (and its jitter).
    assert 1.5 <= took < 10, took
    await release(client, namespace, "stuck")
