"""core/v1's containers: what a pod runs, and what each container needs and exposes.

Split from corral.api.core, which imports these back for the pod's spec.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from corral.api.base import ApiModel, IntOrString, MergeKey, Quantity

Protocol = Literal["TCP", "UDP", "SCTP"]
ResourceList = dict[str, Quantity]
"""Quantities by resource name."""


# --- containers -----------------------------------------------------------


class ContainerPort(ApiModel):
    name: str | None = None
    host_port: int | None = None
    container_port: int
    protocol: Protocol = "TCP"
    host_ip: str | None = Field(default=None, alias="hostIP")


class ObjectFieldSelector(ApiModel):
    api_version: str = "v1"
    field_path: str


class ResourceFieldSelector(ApiModel):
    container_name: str | None = None
    resource: str
    divisor: Quantity | None = None


class ConfigMapKeySelector(ApiModel):
    name: str | None = None
    key: str
    optional: bool | None = None


class SecretKeySelector(ApiModel):
    name: str | None = None
    key: str
    optional: bool | None = None


class EnvVarSource(ApiModel):
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: ConfigMapKeySelector | None = None
    secret_key_ref: SecretKeySelector | None = None


class EnvVar(ApiModel):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


class ConfigMapEnvSource(ApiModel):
    name: str | None = None
    optional: bool | None = None


class SecretEnvSource(ApiModel):
    name: str | None = None
    optional: bool | None = None


class EnvFromSource(ApiModel):
    prefix: str | None = None
    config_map_ref: ConfigMapEnvSource | None = None
    secret_ref: SecretEnvSource | None = None


class ResourceRequirements(ApiModel):
    limits: ResourceList | None = None
    requests: ResourceList | None = None


class VolumeMount(ApiModel):
    name: str
    read_only: bool | None = None
    mount_path: str
    sub_path: str | None = None
    sub_path_expr: str | None = None
    mount_propagation: Literal["None", "HostToContainer", "Bidirectional"] | None = None


class ExecAction(ApiModel):
    command: list[str] | None = None


class HTTPHeader(ApiModel):
    name: str
    value: str


class HTTPGetAction(ApiModel):
    path: str | None = None
    port: IntOrString
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    http_headers: list[HTTPHeader] | None = None


class TCPSocketAction(ApiModel):
    port: IntOrString
    host: str | None = None


class SleepAction(ApiModel):
    seconds: int


class Probe(ApiModel):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: int | None = None
    timeout_seconds: int = 1
    period_seconds: int = 10
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None


class LifecycleHandler(ApiModel):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


class Lifecycle(ApiModel):
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None


class Capabilities(ApiModel):
    add: list[str] | None = None
    drop: list[str] | None = None


class SeccompProfile(ApiModel):
    type: Literal["RuntimeDefault", "Unconfined", "Localhost"]
    localhost_profile: str | None = None


class SecurityContext(ApiModel):
    capabilities: Capabilities | None = None
    privileged: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    seccomp_profile: SeccompProfile | None = None


class Container(ApiModel):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    ports: Annotated[list[ContainerPort], MergeKey("containerPort")] | None = None
    env_from: list[EnvFromSource] | None = None
    env: Annotated[list[EnvVar], MergeKey("name")] | None = None
    resources: ResourceRequirements | None = None
    volume_mounts: Annotated[list[VolumeMount], MergeKey("mountPath")] | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
    termination_message_path: str = "/dev/termination-log"
    termination_message_policy: Literal["File", "FallbackToLogsOnError"] = "File"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    security_context: SecurityContext | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    tty: bool | None = None

    @model_validator(mode="after")
    def _default_pull_policy(self) -> Container:
        # Kubernetes' rule: a floating tag is pulled every time.
        if self.image_pull_policy is None and self.image is not None:
            self.image_pull_policy = "Always" if _floating_tag(self.image) else "IfNotPresent"
        return self


def _floating_tag(image: str) -> bool:
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.endswith(":latest")
