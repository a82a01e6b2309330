"""The official Kubernetes Python client against corral: create, list, patch, watch, delete."""

from __future__ import annotations

import threading

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from tests.conftest import LocalCluster


def _api(cluster: LocalCluster) -> k8s.CoreV1Api:
    api_client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return k8s.CoreV1Api(api_client)


def _pod(name: str) -> k8s.V1Pod:
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, labels={"app": "py"}),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="busybox:1")]),
    )


def test_python_client_round_trip(cluster: LocalCluster, namespace: str) -> None:
    api = _api(cluster)
    try:
        created = api.create_namespaced_pod(namespace, _pod("py-1"))
        assert created.metadata.uid
        assert created.status.phase == "Pending"

        listed = api.list_namespaced_pod(namespace, label_selector="app=py")
        assert [p.metadata.name for p in listed.items] == ["py-1"]

        patched = api.patch_namespaced_pod(
            "py-1", namespace, {"metadata": {"labels": {"patched": "yes"}}}
        )
        assert patched.metadata.labels == {"app": "py", "patched": "yes"}

        seen: list[tuple[str, str]] = []
        watcher = k8s_watch.Watch()

        def watch() -> None:
            for event in watcher.stream(
                api.list_namespaced_pod,
                namespace,
                resource_version=patched.metadata.resource_version,
                timeout_seconds=20,
            ):
                seen.append((event["type"], event["object"].metadata.name))
                if len(seen) == 2:
                    watcher.stop()

        thread = threading.Thread(target=watch)
        thread.start()
        api.create_namespaced_pod(namespace, _pod("py-2"))
        api.delete_namespaced_pod("py-1", namespace)
        thread.join(30)
        assert not thread.is_alive()
        assert seen == [("ADDED", "py-2"), ("DELETED", "py-1")]

        remaining = api.list_namespaced_pod(namespace)
        assert [p.metadata.name for p in remaining.items] == ["py-2"]
    finally:
        api.api_client.close()
