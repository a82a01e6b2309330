"""The real kubectl (v1.32) against corral, with its default validation, on the example stack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from corral.client.rest import Client
from tests.integration.test_crud import DEPLOYMENTS, RCS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gluster.json"


def kubectl(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def items() -> list[dict[str, Any]]:
    document = json.loads(EXAMPLE.read_text())
    return list(document["items"])


def _lines_for(output: str, verb: str) -> list[str]:
    return sorted(line for line in output.splitlines() if line.endswith(f" {verb}"))


async def test_kubectl_on_the_example_stack(
    kubectl_env: dict[str, str], namespace: str, client: Client, items: list[dict[str, Any]]
) -> None:
    ns = ["-n", namespace]
    created = kubectl(kubectl_env, "create", "-f", str(EXAMPLE), *ns)
    assert len(_lines_for(created.stdout, "created")) == len(items)

    rcs = [i for i in items if i["kind"] == "ReplicationController"]
    listed = json.loads(kubectl(kubectl_env, "get", "rc", "-o", "json", *ns).stdout)
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == sorted(
        r["metadata"]["name"] for r in rcs
    )
    deployments = json.loads(kubectl(kubectl_env, "get", "deployments", "-o", "json", *ns).stdout)
    assert [i["metadata"]["name"] for i in deployments["items"]] == ["mediawiki"]

    wide = kubectl(kubectl_env, "get", "pods", "-o", "wide", *ns)
    assert wide.returncode == 0
    assert "No resources found" in wide.stderr  # controllers come later: no pods yet

    services = kubectl(kubectl_env, "get", "svc", *ns).stdout
    assert "varnish" in services and "NodePort" in services and "80:30080/TCP" in services

    first = kubectl(kubectl_env, "apply", "-f", str(EXAMPLE), *ns)
    assert first.returncode == 0
    second = kubectl(kubectl_env, "apply", "-f", str(EXAMPLE), *ns)
    unchanged = _lines_for(second.stdout, "unchanged")
    configured = _lines_for(second.stdout, "configured")
    # As in Kubernetes, a Secret with write-only stringData and a PDB whose
    # selector patches by replacement are re-sent on every apply.
    assert all(
        line.startswith(("secret/", "poddisruptionbudget.policy/")) for line in configured
    ), configured
    assert len(unchanged) + len(configured) == len(items)
    assert len(unchanged) >= len(items) - 2

    scaled = kubectl(kubectl_env, "scale", "deployment", "mediawiki", "--replicas=4", *ns)
    assert "deployment.apps/mediawiki scaled" in scaled.stdout
    assert (await client.get(DEPLOYMENTS, "mediawiki", namespace))["spec"]["replicas"] == 4
    scaled = kubectl(kubectl_env, "scale", "rc", "website", "--replicas=3", *ns)
    assert "replicationcontroller/website scaled" in scaled.stdout
    assert (await client.get(RCS, "website", namespace))["spec"]["replicas"] == 3

    labelled = kubectl(kubectl_env, "label", "rc", "website", "release=canary", *ns)
    assert "labeled" in labelled.stdout
    labels = (await client.get(RCS, "website", namespace))["metadata"]["labels"]
    assert labels["release"] == "canary"

    refused = kubectl(kubectl_env, "label", "rc", "website", "release=stable", *ns, check=False)
    assert refused.returncode != 0
    assert "--overwrite is false" in refused.stderr

    deleted = kubectl(kubectl_env, "delete", "-f", str(EXAMPLE), *ns)
    assert len([line for line in deleted.stdout.splitlines() if "deleted" in line]) == len(items)
    after = kubectl(kubectl_env, "get", "rc,deploy,svc,cm,secret,pdb", *ns)
    assert "No resources found" in after.stderr


def test_kubectl_reports_server_errors_in_one_line(
    kubectl_env: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "bad"},
                "spec": {"containers": [{"name": "c", "image": "busybox", "bogus": 1}]},
            }
        )
    )
    result = kubectl(kubectl_env, "create", "-f", str(bad), "-n", namespace, check=False)
    assert result.returncode == 1
    assert 'unknown field "spec.containers[0].bogus"' in result.stderr
    missing = kubectl(kubectl_env, "get", "pod", "nope", "-n", namespace, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_kubectl_watch_prints_changes(kubectl_env: dict[str, str], namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "w1"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
    }
    with subprocess.Popen(
        ["kubectl", "get", "pods", "-w", "-n", namespace, "--request-timeout=20s"],
        env=kubectl_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as watcher:
        try:
            created = subprocess.run(
                ["kubectl", "create", "-f", "-", "-n", namespace],
                input=json.dumps(pod),
                env=kubectl_env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert created.returncode == 0, created.stderr
            assert watcher.stdout is not None
            seen = ""
            for line in watcher.stdout:
                seen += line
                if "w1" in line:
                    break
            assert "w1" in seen and "Pending" in seen
        finally:
            watcher.kill()
