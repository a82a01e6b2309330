from __future__ import annotations

from typing import Any

from nodeagent.network.env import pod_service_env, service_env


def service(name: str, namespace: str = "default", ip: str = "10.96.0.10", **spec: Any) -> Any:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": ip, **spec},
    }


def test_variables_as_the_kubelet_computes_them() -> None:
    env = service_env(
        [
            service(
                "redis-master",
                ports=[
                    {"name": "", "port": 6379, "protocol": "TCP"},
                    {"name": "metrics-port", "port": 9121, "protocol": "UDP"},
                ],
            )
        ]
    )
    assert env == {
        "REDIS_MASTER_SERVICE_HOST": "10.96.0.10",
        "REDIS_MASTER_SERVICE_PORT": "6379",
        "REDIS_MASTER_SERVICE_PORT_METRICS_PORT": "9121",
        "REDIS_MASTER_PORT": "tcp://10.96.0.10:6379",
        "REDIS_MASTER_PORT_6379_TCP": "tcp://10.96.0.10:6379",
        "REDIS_MASTER_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_MASTER_PORT_6379_TCP_PORT": "6379",
        "REDIS_MASTER_PORT_6379_TCP_ADDR": "10.96.0.10",
        "REDIS_MASTER_PORT_9121_UDP": "udp://10.96.0.10:9121",
        "REDIS_MASTER_PORT_9121_UDP_PROTO": "udp",
        "REDIS_MASTER_PORT_9121_UDP_PORT": "9121",
        "REDIS_MASTER_PORT_9121_UDP_ADDR": "10.96.0.10",
    }


def test_protocol_defaults_to_tcp_and_headless_services_are_skipped() -> None:
    env = service_env(
        [
            service("web", ports=[{"port": 80}]),
            service("db", ip="None", ports=[{"port": 3306}]),
            service("noip", ip="", ports=[{"port": 1}]),
        ]
    )
    assert env["WEB_PORT"] == "tcp://10.96.0.10:80"
    assert not any(key.startswith(("DB_", "NOIP_")) for key in env)


def test_a_pod_gets_its_namespace_and_the_master_service() -> None:
    services = [
        service("kubernetes", "default", "10.96.0.1", ports=[{"name": "https", "port": 443}]),
        service("web", "shop", "10.96.0.20", ports=[{"port": 80}]),
        service("web", "other", "10.96.0.30", ports=[{"port": 80}]),
    ]
    pod: dict[str, Any] = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {}}
    env = pod_service_env(pod, services)
    assert env["WEB_SERVICE_HOST"] == "10.96.0.20"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    pod["spec"]["enableServiceLinks"] = False
    env = pod_service_env(pod, services)
    assert "WEB_SERVICE_HOST" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_a_namespace_service_named_kubernetes_wins_over_the_master_one() -> None:
    services = [
        service("kubernetes", "default", "10.96.0.1", ports=[{"port": 443}]),
        service("kubernetes", "shop", "10.96.0.99", ports=[{"port": 443}]),
    ]
    pod = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {}}
    assert pod_service_env(pod, services)["KUBERNETES_SERVICE_HOST"] == "10.96.0.99"
