"""``corral rollout`` and ``corral rolling-update`` against a real API server.

The commands run in-process (``test_controllers_deployment_standins.cli``)
with the real Deployment, ReplicaSet and ReplicationController controllers;
the node agent's part is the stand-in's. Timeouts run on a ManualClock
where the test can say when time passes.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.replication import replica_set, replication_controller
from corral.client.rest import Client
from corral.clock import ManualClock, rfc3339
from corral.objects import Obj
from corralctl.context import UsageError
from corralctl.rollout import (
    RolloutFailed,
    history_table,
    parse_duration,
    rollback_patch,
    rollback_target,
    status_line,
)
from tests.conftest import LocalCluster
from tests.integration.test_controllers_deployment_standins import (
    AvailabilitySampler,
    cli,
    deployment,
    images,
    is_active,
    is_ready,
    node_agent,
    rolled_out,
    set_image,
)
from tests.integration.test_controllers_harness import DEPLOYMENTS, PODS, RCS, RSS, rc, running
from tests.support import eventually

WAITING = re.compile(
    r'Waiting for deployment "web" rollout to finish: ('
    r"\d+ out of \d+ new replicas have been updated|"
    r"\d+ old replicas are pending termination|"
    r"\d+ of \d+ updated replicas are available)\.\.\."
)


async def _ready_pods(client: Client, namespace: str, selector: str) -> list[Obj]:
    items = (await client.list(PODS, namespace, label_selector=selector))["items"]
    return [p for p in items if is_active(p) and is_ready(p)]


# --- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("0", 0.0), ("1.5", 1.5)],
)
def test_durations_read_like_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_status_lines_read_like_kubectl() -> None:
    d: Obj = {
        "metadata": {"name": "web", "generation": 2},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 1},
    }
    assert status_line(d) == ("Waiting for deployment spec update to be observed...", False)
    d["status"] = {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 2}
    assert status_line(d)[0].endswith("2 out of 3 new replicas have been updated...")
    d["status"].update(updatedReplicas=3)
    assert status_line(d)[0].endswith("1 old replicas are pending termination...")
    d["status"].update(replicas=3, availableReplicas=2)
    assert status_line(d)[0].endswith("2 of 3 updated replicas are available...")
    d["status"].update(availableReplicas=3)
    assert status_line(d) == ('deployment "web" successfully rolled out', True)


def _rs(revision: int, image: str, **notes: str) -> Obj:
    return {
        "metadata": {
            "name": f"web-{revision}",
            "annotations": {"deployment.kubernetes.io/revision": str(revision), **notes},
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": f"h{revision}"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }
        },
    }


def test_undo_picks_the_revision_and_patches_like_kubectl() -> None:
    history = [_rs(1, "a"), _rs(3, "c", **{"kubernetes.io/change-cause": "three"}), _rs(2, "b")]
    assert rollback_target(history, 0, "web")["metadata"]["name"] == "web-2"
    assert rollback_target(history, 3, "web")["metadata"]["name"] == "web-3"
    with pytest.raises(RolloutFailed, match="unable to find specified revision 7 in history"):
        rollback_target(history, 7, "web")
    with pytest.raises(RolloutFailed, match='no rollout history found for deployment "web"'):
        rollback_target(history[:1], 0, "web")

    d: Obj = {
        "metadata": {
            "annotations": {
                "deployment.kubernetes.io/revision": "2",
                "kubernetes.io/change-cause": "two",
                "team": "web",
            }
        }
    }
    template_op, annotations_op = rollback_patch(d, history[1])
    assert template_op == {
        "op": "replace",
        "path": "/spec/template",
        "value": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "c"}]},
        },
    }
    # The Deployment keeps its revision; everything else comes from the ReplicaSet.
    assert annotations_op == {
        "op": "replace",
        "path": "/metadata/annotations",
        "value": {"deployment.kubernetes.io/revision": "2", "kubernetes.io/change-cause": "three"},
    }


def test_history_table() -> None:
    table = history_table([_rs(2, "b", **{"kubernetes.io/change-cause": "new image"}), _rs(1, "a")])
    assert table == "REVISION  CHANGE-CAUSE\n1         <none>\n2         new image\n"
    assert history_table([]) == "No rollout history found.\n"


# --- rollout ----------------------------------------------------------------------------------


async def test_status_follows_a_rollout_to_the_end(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 3, "nginx:1"), namespace)
    async with cli(cluster, namespace) as corral:
        following = asyncio.create_task(corral("rollout", "status", "deployment/web"))
        async with (
            running(client, namespace, DeploymentController, replica_set),
            node_agent(client, namespace),
        ):
            assert await asyncio.wait_for(following, 30) == 0
        out, err = corral.take()
    lines = out.splitlines()
    assert lines[0] == "Waiting for deployment spec update to be observed..."
    assert lines[-1] == 'deployment "web" successfully rolled out'
    assert all(WAITING.fullmatch(line) for line in lines[1:-1]), lines
    assert len(set(lines)) == len(lines)  # each state said once
    assert err == ""


async def test_set_image_starts_a_rollout_that_status_follows(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 2, "nginx:1"), namespace)
    async with (
        running(client, namespace, DeploymentController, replica_set),
        node_agent(client, namespace),
        cli(cluster, namespace) as corral,
    ):
        assert await asyncio.wait_for(corral("rollout", "status", "deployment/web"), 30) == 0
        corral.take()
        assert await corral("set", "image", "deployment/web", "app=nginx:2") == 0
        assert corral.take() == ("deployment.apps/web image updated\n", "")
        assert await asyncio.wait_for(corral("rollout", "status", "deployment/web"), 30) == 0
        pods = await _ready_pods(client, namespace, "app=web")
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:2"}
        with pytest.raises(UsageError, match='unable to find container named "web"'):
            await corral("set", "image", "deployment/web", "web=nginx:3")
    current = await client.get(DEPLOYMENTS, "web", namespace)
    assert current["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"


async def test_status_exit_codes(cluster: LocalCluster, client: Client, namespace: str) -> None:
    clock = ManualClock()
    await client.create(DEPLOYMENTS, deployment("web", 2, "nginx:1"), namespace)
    async with cli(cluster, namespace, clock) as corral:
        # Nothing runs the controller: a timeout is the only way out.
        waiting = asyncio.create_task(corral("rollout", "status", "web", "--timeout", "5s"))
        await eventually(lambda: corral.out.getvalue(), message="the first status line")
        clock.advance(5)
        assert await asyncio.wait_for(waiting, 10) == 1
        assert corral.take() == (
            "Waiting for deployment spec update to be observed...\n",
            "error: timed out waiting for the condition\n",
        )
        assert await corral("rollout", "status", "web", "--watch=false") == 0
        assert corral.take()[0] == "Waiting for deployment spec update to be observed...\n"
        async with (
            running(client, namespace, DeploymentController, replica_set),
            node_agent(client, namespace),
        ):
            await eventually(lambda: rolled_out(client, namespace), timeout=30, message="done")
        assert await corral("rollout", "status", "deploy", "web") == 0
        assert corral.take() == ('deployment "web" successfully rolled out\n', "")
        assert await corral("rollout", "status", "web", "--revision", "2") == 1
        assert corral.take()[1] == (
            "error: desired revision (2) is different from the running revision (1)\n"
        )
        with pytest.raises(UsageError, match="daemonsets, not"):
            await corral("rollout", "status", "rc/web")


async def _rolled(client: Client, namespace: str, image: str, cause: str) -> None:
    await client.patch(
        DEPLOYMENTS,
        "web",
        {
            "metadata": {"annotations": {"kubernetes.io/change-cause": cause}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
        },
        namespace,
        patch_type="strategic",
    )
    await eventually(lambda: rolled_out(client, namespace), timeout=30, message=image)


async def test_history_undo_restart_pause_resume(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    clock = ManualClock()
    await client.create(DEPLOYMENTS, deployment("web", 2, "nginx:1"), namespace)
    async with (
        running(client, namespace, DeploymentController, replica_set),
        node_agent(client, namespace),
        cli(cluster, namespace, clock) as corral,
    ):
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="rollout")
        await _rolled(client, namespace, "nginx:2", "set image nginx:2")

        assert await corral("rollout", "history", "deployment/web") == 0
        assert corral.take() == (
            "deployment.apps/web\n"
            "REVISION  CHANGE-CAUSE\n"
            "1         <none>\n"
            "2         set image nginx:2\n",
            "",
        )
        assert await corral("rollout", "history", "web", "--revision", "2") == 0
        out, _ = corral.take()
        assert out.startswith("deployment.apps/web with revision #2\nPod Template:\n")
        assert "kubernetes.io/change-cause: set image nginx:2" in out
        assert re.search(r"Image:\s+nginx:2", out)
        assert await corral("rollout", "history", "web", "--revision", "9") == 1
        assert corral.take()[1] == "error: unable to find the specified revision\n"

        assert await corral("rollout", "undo", "web", "--to-revision", "9") == 1
        assert corral.take()[1] == "error: unable to find specified revision 9 in history\n"
        assert await corral("rollout", "undo", "deploy", "web", "--to-revision", "1") == 0
        assert corral.take()[0] == "deployment.apps/web rolled back\n"
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="undo")
        d = await client.get(DEPLOYMENTS, "web", namespace)
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
        # kubectl's rule: the Deployment takes the revision's annotations.
        assert "kubernetes.io/change-cause" not in d["metadata"]["annotations"]
        assert await corral("rollout", "undo", "web", "--to-revision", "3") == 0
        assert corral.take()[0] == (
            "deployment.apps/web skipped rollback (current template already matches revision 3)\n"
        )

        assert await corral("rollout", "restart", "web") == 0
        assert corral.take()[0] == "deployment.apps/web restarted\n"
        d = await client.get(DEPLOYMENTS, "web", namespace)
        stamp = d["spec"]["template"]["metadata"]["annotations"][
            "kubectl.kubernetes.io/restartedAt"
        ]
        assert stamp == rfc3339(clock.now())
        await eventually(lambda: rolled_out(client, namespace), timeout=30, message="restart")
        sets = (await client.list(RSS, namespace))["items"]
        assert len(sets) == 3  # a fresh ReplicaSet, so fresh pods

        assert await corral("rollout", "pause", "web") == 0
        assert await corral("rollout", "pause", "web") == 1
        assert corral.take() == (
            "deployment.apps/web paused\n",
            'error: deployments.apps "web" is already paused\n',
        )
        assert await corral("rollout", "restart", "web") == 1
        assert await corral("rollout", "undo", "web") == 1
        _, err = corral.take()
        assert err.splitlines() == [
            'error: deployments.apps "web" can\'t restart paused deployment '
            "(run rollout resume first)",
            "error: you cannot rollback a paused deployment; resume it first with "
            "'corral rollout resume' and try again",
        ]
        assert await corral("rollout", "resume", "deployments.apps/web") == 0
        assert await corral("rollout", "resume", "web") == 1
        assert corral.take() == (
            "deployment.apps/web resumed\n",
            'error: deployments.apps "web" is not paused\n',
        )


# --- rolling-update ---------------------------------------------------------------------------


async def _rc_names(client: Client, namespace: str) -> list[str]:
    return sorted(r["metadata"]["name"] for r in (await client.list(RCS, namespace))["items"])


async def test_rolling_update_with_an_image(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    await client.create(RCS, rc("web", 3), namespace)
    async with (
        running(client, namespace, replication_controller),
        node_agent(client, namespace),
        cli(cluster, namespace) as corral,
    ):
        await eventually(
            lambda: _count(_ready_pods(client, namespace, "app=web"), 3), message="3 ready"
        )
        sampler = AvailabilitySampler(client, namespace, {"app": "web"})
        async with sampler.watching():
            code = await corral(
                "rolling-update", "web", "--image", "busybox:1.37", "--update-period", "0s"
            )
        out, err = corral.take()
        assert (code, err) == (0, "")
        lines = out.splitlines()
        new = lines[0].removeprefix("Created ")
        assert re.fullmatch(r"web-[0-9a-f]{10}", new)
        assert lines[1] == (
            f"Scaling up {new} from 0 to 3, scaling down web from 3 to 0 "
            "(keep 3 pods available, don't exceed 4 pods)"
        )
        steps = lines[2:-2]
        assert steps[0] == f"Scaling {new} up to 1"
        assert f"Scaling {new} up to 3" in steps and steps[-1] == "Scaling web down to 0"
        assert all(re.fullmatch(rf"Scaling ({new} up|web down) to \d", s) for s in steps)
        assert lines[-2:] == [
            "Update succeeded. Deleting web",
            f'replicationcontroller "web" rolling updated to "{new}"',
        ]
        assert sampler.fewest is not None and sampler.fewest >= 3

        assert await _rc_names(client, namespace) == [new]
        survivor = await client.get(RCS, new, namespace)
        assert survivor["spec"]["replicas"] == 3
        assert survivor["spec"]["selector"]["deployment"] == new.removeprefix("web-")
        assert not any(
            k.startswith("kubectl.kubernetes.io/")
            for k in survivor["metadata"].get("annotations") or {}
        )
        pods = await _ready_pods(client, namespace, "app=web")
        assert len(pods) == 3 and all(images(p) == ["busybox:1.37"] for p in pods)

        # The next update starts from the new name without letting it grow.
        assert (
            await corral("rolling-update", new, "--image", "busybox:1.38", "--update-period", "0s")
            == 0
        )
        out, _ = corral.take()
        newer = out.splitlines()[0].removeprefix("Created ")
        assert re.fullmatch(r"web-[0-9a-f]{10}", newer) and newer != new
        assert await _rc_names(client, namespace) == [newer]


async def _count(pods: Any, want: int) -> bool:
    return len(await pods) == want


async def test_rolling_update_rollback_after_a_stuck_update(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    await client.create(RCS, rc("web", 3), namespace)
    async with (
        running(client, namespace, replication_controller),
        node_agent(client, namespace),
        cli(cluster, namespace) as corral,
    ):
        await eventually(
            lambda: _count(_ready_pods(client, namespace, "app=web"), 3), message="3 ready"
        )
        args = ("rolling-update", "web", "--image", "bad:1", "--update-period", "0s")
        assert await corral(*args, "--timeout", "1s") == 1
        out, err = corral.take()
        new = out.splitlines()[0].removeprefix("Created ")
        assert err == "error: timed out waiting for any update progress to be made\n"
        assert await _rc_names(client, namespace) == sorted(["web", new])

        assert await corral("rolling-update", "web", "--rollback", "--update-period", "0s") == 0
        out, err = corral.take()
        assert err == ""
        assert out.splitlines() == [
            'Setting "web" replicas to 3',
            "Continuing update with existing controller web.",
            f"Scaling up web from 3 to 3, scaling down {new} from 1 to 0 "
            "(keep 3 pods available, don't exceed 4 pods)",
            f"Scaling {new} down to 0",
            f"Update succeeded. Deleting {new}",
            'replicationcontroller "web" rolled back',
        ]
        assert await _rc_names(client, namespace) == ["web"]
        await eventually(
            lambda: _count(_ready_pods(client, namespace, "app=web"), 3), message="3 ready"
        )
        pods = await _ready_pods(client, namespace, "app=web")
        assert all(images(p) == ["busybox:1.36"] for p in pods)


async def test_rolling_update_from_a_file(
    cluster: LocalCluster, client: Client, namespace: str, tmp_path: Path
) -> None:
    old = rc("web", 2, {"app": "web", "version": "v1"})
    await client.create(RCS, old, namespace)
    new = rc("web-v2", 2, {"app": "web", "version": "v2"})
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
    manifest = tmp_path / "web-v2.json"
    manifest.write_text(json.dumps(new))
    async with (
        running(client, namespace, replication_controller),
        node_agent(client, namespace),
        cli(cluster, namespace) as corral,
    ):
        with pytest.raises(UsageError, match="must specify --filename or --image"):
            await corral("rolling-update", "web")
        with pytest.raises(UsageError, match="distinct from existing container image"):
            await corral("rolling-update", "web", "--image", "busybox:1.36")
        code = await corral("rolling-update", "web", "-f", str(manifest), "--update-period", "0")
        out, err = corral.take()
        assert (code, err) == (0, "")
        assert out.splitlines()[0] == "Created web-v2"
        assert out.splitlines()[-1] == 'replicationcontroller "web" rolling updated to "web-v2"'
        assert await _rc_names(client, namespace) == ["web-v2"]
        pods = await _ready_pods(client, namespace, "app=web")
        assert len(pods) == 2 and all(p["metadata"]["labels"]["version"] == "v2" for p in pods)


def _kubectl(env: dict[str, str], namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "-n", namespace, *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_the_real_kubectl_drives_a_rollout(
    kubectl_env: dict[str, str], client: Client, namespace: str
) -> None:
    await client.create(DEPLOYMENTS, deployment("web", 3, "nginx:1"), namespace)
    async with (
        running(client, namespace, DeploymentController, replica_set),
        node_agent(client, namespace),
    ):

        async def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            # In a thread: the controllers it waits on run on this event loop.
            return await asyncio.to_thread(_kubectl, kubectl_env, namespace, *args)

        status = await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        assert status.returncode == 0, status.stderr
        assert status.stdout.endswith('deployment "web" successfully rolled out\n')
        await set_image(client, namespace, "web", "nginx:2")
        assert (await kubectl("rollout", "status", "deploy/web", "--timeout=30s")).returncode == 0
        first = (await client.list(RSS, namespace, label_selector="app=web"))["items"]

        # kubectl's undo sends the template through Go types (``resources: {}`` and
        # all): it is still revision 1's template, so its ReplicaSet comes back.
        undo = await kubectl("rollout", "undo", "deployment/web")
        assert undo.stdout == "deployment.apps/web rolled back\n", undo.stderr
        assert (await kubectl("rollout", "status", "deploy/web", "--timeout=30s")).returncode == 0
        after = (await client.list(RSS, namespace, label_selector="app=web"))["items"]
        assert sorted(r["metadata"]["name"] for r in after) == sorted(
            r["metadata"]["name"] for r in first
        )
        history = await kubectl("rollout", "history", "deployment/web")
        assert history.stdout.splitlines()[1:] == [
            "REVISION  CHANGE-CAUSE",
            "2         <none>",
            "3         <none>",
            "",
        ]
