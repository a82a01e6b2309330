"""What the agent enforces on every container, read from inside the container itself."""

from __future__ import annotations

from corral.client.rest import Client
from corral.objects import Obj
from tests.conftest import LocalCluster
from tests.e2e.conftest import Agents, wait_for_node
from tests.e2e.test_agent import PODS, container_status, corral, pod, status_of
from tests.support import eventually

CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
CAP_NET_BIND_SERVICE = 10


async def _log_with(cluster: LocalCluster, name: str, namespace: str, marker: str) -> str | None:
    logs = corral(cluster, "logs", name, "-n", namespace)
    return logs.stdout if logs.returncode == 0 and marker in logs.stdout else None


def _status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


async def test_containers_get_no_new_privs_seccomp_and_fewer_capabilities(
    cluster: LocalCluster, client: Client, namespace: str, agents: Agents
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    await client.create(
        PODS, pod("plain", agent.node, "cat /proc/1/status; echo END; sleep 3600"), namespace
    )
    text = await eventually(
        lambda: _log_with(cluster, "plain", namespace, "END"), timeout=60, message="status"
    )
    fields = _status_fields(text)
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"  # filter mode: Docker's default profile
    bounding = int(fields["CapBnd"], 16)
    assert not bounding & (1 << CAP_NET_RAW), "NET_RAW must be dropped"
    assert not bounding & (1 << CAP_SYS_ADMIN)
    assert bounding & (1 << CAP_NET_BIND_SERVICE), "the rest of Docker's default set stays"


async def test_a_pods_security_context_is_applied(
    cluster: LocalCluster, client: Client, namespace: str, agents: Agents
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    body = pod(
        "strict",
        agent.node,
        "id -u; grep CapBnd /proc/1/status; touch /nope 2>&1 || echo READONLY; echo END; "
        "sleep 3600",
        container={
            "securityContext": {
                "runAsUser": 1000,
                "runAsNonRoot": True,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            }
        },
    )
    await client.create(PODS, body, namespace)
    text = await eventually(
        lambda: _log_with(cluster, "strict", namespace, "END"), timeout=60, message="output"
    )
    lines = text.splitlines()
    assert lines[0] == "1000"
    assert int(_status_fields(lines[1])["CapBnd"], 16) == 1 << CAP_NET_BIND_SERVICE
    assert "READONLY" in text

    # runAsNonRoot with an image that runs as root: the container never starts.
    root_pod = pod("root", agent.node, "sleep 3600")
    root_pod["spec"]["securityContext"] = {"runAsNonRoot": True}
    await client.create(PODS, root_pod, namespace)

    async def refused() -> Obj | None:
        waiting = container_status(await status_of(client, "root", namespace)).get("state") or {}
        found = waiting.get("waiting") or {}
        return found if found.get("reason") == "CreateContainerConfigError" else None

    waiting = await eventually(refused, timeout=60, message="runAsNonRoot refusal")
    assert "runAsNonRoot and image will run as root" in waiting["message"]


async def test_a_symlink_planted_in_an_empty_dir_cannot_steer_a_sub_path(
    cluster: LocalCluster, client: Client, namespace: str, agents: Agents
) -> None:
    agent = agents.start()
    wait_for_node(cluster, agent.node)
    body = pod(
        "escape",
        agent.node,
        "ls /mnt/x; echo END; sleep 3600",
        container={"volumeMounts": [{"name": "shared", "mountPath": "/mnt/x", "subPath": "x"}]},
        volumes=[{"name": "shared", "emptyDir": {}}],
        initContainers=[
            {
                "name": "plant",
                "image": "corral-test/busybox:1",
                "imagePullPolicy": "Never",
                # CVE-2017-1002101: the volume's content points at the host's root.
                "command": ["sh", "-c", "ln -s / /vol/x"],
                "volumeMounts": [{"name": "shared", "mountPath": "/vol"}],
            }
        ],
    )
    await client.create(PODS, body, namespace)

    async def refused() -> Obj | None:
        state = container_status(await status_of(client, "escape", namespace)).get("state") or {}
        waiting = state.get("waiting") or {}
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None

    waiting = await eventually(refused, timeout=60, message="the subPath refused")
    assert "symlink" in waiting["message"]
    assert (await status_of(client, "escape", namespace)).get("phase") != "Running"
