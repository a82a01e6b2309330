"""core/v1: the kinds corral serves from the legacy ``/api/v1`` group.

Only what corral implements is modelled. A field Kubernetes has and corral
does not is an unknown field here, so a manifest that relies on it is told
so (fieldValidation=Strict) instead of being silently half-honoured.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from corral.api.base import ApiModel, IntOrString, MergeKey, MergeSet, Quantity, RetainKeys, Time
from corral.api.containers import (
    Container,
    ObjectFieldSelector,
    Protocol,
    ResourceFieldSelector,
    ResourceList,
    SeccompProfile,
)
from corral.api.meta import LabelSelector, ListMeta, ObjectMeta


class ObjectReference(ApiModel):
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    api_version: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class LocalObjectReference(ApiModel):
    name: str | None = None


# --- volumes ----------------------------------------------------------------


class KeyToPath(ApiModel):
    key: str
    path: str
    mode: int | None = None


class EmptyDirVolumeSource(ApiModel):
    medium: Literal["", "Memory"] | None = None
    size_limit: Quantity | None = None


class HostPathVolumeSource(ApiModel):
    path: str
    type: (
        Literal[
            "",
            "DirectoryOrCreate",
            "Directory",
            "FileOrCreate",
            "File",
            "Socket",
            "CharDevice",
            "BlockDevice",
        ]
        | None
    ) = None


class ConfigMapVolumeSource(ApiModel):
    name: str | None = None
    items: list[KeyToPath] | None = None
    default_mode: int | None = 0o644
    optional: bool | None = None


class SecretVolumeSource(ApiModel):
    secret_name: str | None = None
    items: list[KeyToPath] | None = None
    default_mode: int | None = 0o644
    optional: bool | None = None


class DownwardAPIVolumeFile(ApiModel):
    path: str
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    mode: int | None = None


class DownwardAPIVolumeSource(ApiModel):
    items: list[DownwardAPIVolumeFile] | None = None
    default_mode: int | None = 0o644


class PersistentVolumeClaimVolumeSource(ApiModel):
    claim_name: str
    read_only: bool | None = None


class Volume(ApiModel):
    name: str
    empty_dir: EmptyDirVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    downward_api: DownwardAPIVolumeSource | None = Field(default=None, alias="downwardAPI")
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = None


VOLUME_SOURCES = (
    "emptyDir",
    "hostPath",
    "configMap",
    "secret",
    "downwardAPI",
    "persistentVolumeClaim",
)


# --- scheduling -------------------------------------------------------------


class NodeSelectorRequirement(ApiModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] | None = None


class NodeSelectorTerm(ApiModel):
    match_expressions: list[NodeSelectorRequirement] | None = None
    match_fields: list[NodeSelectorRequirement] | None = None


class NodeSelector(ApiModel):
    node_selector_terms: list[NodeSelectorTerm]


class PreferredSchedulingTerm(ApiModel):
    weight: int
    preference: NodeSelectorTerm


class NodeAffinity(ApiModel):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = (
        None
    )


class PodAffinityTerm(ApiModel):
    label_selector: LabelSelector | None = None
    namespaces: list[str] | None = None
    namespace_selector: LabelSelector | None = None
    topology_key: str


class WeightedPodAffinityTerm(ApiModel):
    weight: int
    pod_affinity_term: PodAffinityTerm


class PodAffinity(ApiModel):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = None
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = (
        None
    )


class Affinity(ApiModel):
    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Toleration(ApiModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: TaintEffect | Literal[""] | None = None
    toleration_seconds: int | None = None


class TopologySpreadConstraint(ApiModel):
    max_skew: int
    topology_key: str
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    label_selector: LabelSelector | None = None
    min_domains: int | None = None
    match_label_keys: list[str] | None = None


class HostAlias(ApiModel):
    ip: str
    hostnames: list[str] | None = None


class PodDNSConfigOption(ApiModel):
    name: str | None = None
    value: str | None = None


class PodDNSConfig(ApiModel):
    nameservers: list[str] | None = None
    searches: list[str] | None = None
    options: list[PodDNSConfigOption] | None = None


class Sysctl(ApiModel):
    name: str
    value: str


class PodSecurityContext(ApiModel):
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: list[int] | None = None
    sysctls: list[Sysctl] | None = None
    seccomp_profile: SeccompProfile | None = None


# --- pods -------------------------------------------------------------------


class PodSpec(ApiModel):
    volumes: Annotated[list[Volume], MergeKey("name"), RetainKeys()] | None = None
    init_containers: Annotated[list[Container], MergeKey("name")] | None = None
    containers: Annotated[list[Container], MergeKey("name")]
    restart_policy: Literal["Always", "OnFailure", "Never"] = "Always"
    termination_grace_period_seconds: int = 30
    active_deadline_seconds: int | None = None
    dns_policy: Literal["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"] = (
        "ClusterFirst"
    )
    node_selector: dict[str, str] | None = None
    service_account_name: str | None = None
    service_account: str | None = None
    automount_service_account_token: bool | None = None
    node_name: str | None = None
    host_network: bool | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    host_ipc: bool | None = Field(default=None, alias="hostIPC")
    share_process_namespace: bool | None = None
    security_context: PodSecurityContext | None = None
    image_pull_secrets: Annotated[list[LocalObjectReference], MergeKey("name")] | None = None
    hostname: str | None = None
    subdomain: str | None = None
    affinity: Affinity | None = None
    scheduler_name: str = "default-scheduler"
    tolerations: list[Toleration] | None = None
    host_aliases: Annotated[list[HostAlias], MergeKey("ip")] | None = None
    priority_class_name: str | None = None
    priority: int | None = None
    dns_config: PodDNSConfig | None = None
    enable_service_links: bool = True
    topology_spread_constraints: (
        Annotated[list[TopologySpreadConstraint], MergeKey("topologyKey")] | None
    ) = None


class PodCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_probe_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class ContainerStateWaiting(ApiModel):
    reason: str | None = None
    message: str | None = None


class ContainerStateRunning(ApiModel):
    started_at: Time | None = None


class ContainerStateTerminated(ApiModel):
    exit_code: int
    signal: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: Time | None = None
    finished_at: Time | None = None
    container_id: str | None = Field(default=None, alias="containerID")


class ContainerState(ApiModel):
    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(ApiModel):
    name: str
    state: ContainerState | None = None
    last_state: ContainerState | None = None
    ready: bool
    restart_count: int
    image: str
    image_id: str = Field(alias="imageID")
    container_id: str | None = Field(default=None, alias="containerID")
    started: bool | None = None


class PodIP(ApiModel):
    ip: str


class PodStatus(ApiModel):
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] | None = None
    conditions: Annotated[list[PodCondition], MergeKey("type")] | None = None
    message: str | None = None
    reason: str | None = None
    nominated_node_name: str | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")
    host_ips: list[PodIP] | None = Field(default=None, alias="hostIPs")
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: Annotated[list[PodIP], MergeKey("ip")] | None = Field(default=None, alias="podIPs")
    start_time: Time | None = None
    init_container_statuses: list[ContainerStatus] | None = None
    container_statuses: list[ContainerStatus] | None = None
    qos_class: Literal["Guaranteed", "Burstable", "BestEffort"] | None = None


class Pod(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: PodSpec
    status: PodStatus | None = None


class PodTemplateSpec(ApiModel):
    metadata: ObjectMeta | None = None
    spec: PodSpec | None = None


class Binding(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Binding"] = "Binding"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    target: ObjectReference


# --- replication controllers ---------------------------------------------------


class ReplicationControllerCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class ReplicationControllerSpec(ApiModel):
    replicas: int = 1
    min_ready_seconds: int | None = None
    selector: dict[str, str] | None = None
    template: PodTemplateSpec | None = None

    @model_validator(mode="after")
    def _default_selector(self) -> ReplicationControllerSpec:
        # Kubernetes' defaulting: no selector means "the template's labels".
        template_labels = (
            self.template.metadata.labels if (self.template and self.template.metadata) else None
        )
        if not self.selector and template_labels:
            self.selector = dict(template_labels)
        return self


class ReplicationControllerStatus(ApiModel):
    replicas: int = 0
    fully_labeled_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    observed_generation: int | None = None
    conditions: Annotated[list[ReplicationControllerCondition], MergeKey("type")] | None = None


class ReplicationController(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ReplicationController"] = "ReplicationController"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ReplicationControllerSpec = Field(default_factory=ReplicationControllerSpec)
    status: ReplicationControllerStatus | None = None

    @model_validator(mode="after")
    def _default_labels(self) -> ReplicationController:
        template = self.spec.template
        if (
            not self.metadata.labels
            and template
            and template.metadata
            and (template.metadata.labels)
        ):
            self.metadata.labels = dict(template.metadata.labels)
        return self


# --- services and endpoints -----------------------------------------------------


class ServicePort(ApiModel):
    name: str | None = None
    protocol: Protocol = "TCP"
    app_protocol: str | None = None
    port: int
    target_port: IntOrString | None = None
    node_port: int | None = None

    @model_validator(mode="after")
    def _default_target_port(self) -> ServicePort:
        if self.target_port is None:
            self.target_port = self.port
        return self


class ClientIPConfig(ApiModel):
    timeout_seconds: int | None = None


class SessionAffinityConfig(ApiModel):
    client_ip: ClientIPConfig | None = Field(default=None, alias="clientIP")


class ServiceSpec(ApiModel):
    ports: Annotated[list[ServicePort], MergeKey("port")] | None = None
    selector: dict[str, str] | None = None
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = "ClusterIP"
    external_ips: list[str] | None = Field(default=None, alias="externalIPs")
    session_affinity: Literal["None", "ClientIP"] = "None"
    session_affinity_config: SessionAffinityConfig | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    external_name: str | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    ip_families: list[Literal["IPv4", "IPv6"]] | None = None
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    publish_not_ready_addresses: bool | None = None

    @model_validator(mode="after")
    def _default_cluster_ips(self) -> ServiceSpec:
        if self.cluster_ip and not self.cluster_ips:
            self.cluster_ips = [self.cluster_ip]
        return self


class LoadBalancerIngress(ApiModel):
    ip: str | None = None
    hostname: str | None = None


class LoadBalancerStatus(ApiModel):
    ingress: list[LoadBalancerIngress] | None = None


class ServiceStatus(ApiModel):
    # Always present, as Kubernetes serializes it (a struct, never omitted):
    # a Service's status reads {"loadBalancer": {}} until a load balancer exists.
    load_balancer: LoadBalancerStatus | None = Field(default_factory=LoadBalancerStatus)


class Service(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: ServiceStatus | None = Field(default_factory=ServiceStatus)


class EndpointAddress(ApiModel):
    ip: str
    hostname: str | None = None
    node_name: str | None = None
    target_ref: ObjectReference | None = None


class EndpointPort(ApiModel):
    name: str | None = None
    port: int
    protocol: Protocol = "TCP"
    app_protocol: str | None = None


class EndpointSubset(ApiModel):
    addresses: list[EndpointAddress] | None = None
    not_ready_addresses: list[EndpointAddress] | None = None
    ports: list[EndpointPort] | None = None


class Endpoints(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Endpoints"] = "Endpoints"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    subsets: list[EndpointSubset] | None = None


# --- nodes ------------------------------------------------------------------


class Taint(ApiModel):
    key: str
    value: str | None = None
    effect: TaintEffect
    time_added: Time | None = None


class NodeSpec(ApiModel):
    pod_cidr: str | None = Field(default=None, alias="podCIDR")
    pod_cidrs: Annotated[list[str], MergeSet()] | None = Field(default=None, alias="podCIDRs")
    provider_id: str | None = Field(default=None, alias="providerID")
    unschedulable: bool | None = None
    taints: list[Taint] | None = None


class NodeCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_heartbeat_time: Time | None = None
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class NodeAddress(ApiModel):
    type: Literal["Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS"]
    address: str


class DaemonEndpoint(ApiModel):
    port: int = Field(alias="Port")


class NodeDaemonEndpoints(ApiModel):
    kubelet_endpoint: DaemonEndpoint | None = None


class NodeSystemInfo(ApiModel):
    machine_id: str = Field(default="", alias="machineID")
    system_uuid: str = Field(default="", alias="systemUUID")
    boot_id: str = Field(default="", alias="bootID")
    kernel_version: str = ""
    os_image: str = ""
    container_runtime_version: str = ""
    kubelet_version: str = ""
    kube_proxy_version: str = ""
    operating_system: str = ""
    architecture: str = ""


class ContainerImage(ApiModel):
    names: list[str] | None = None
    size_bytes: int | None = None


class NodeStatus(ApiModel):
    capacity: ResourceList | None = None
    allocatable: ResourceList | None = None
    phase: str | None = None
    conditions: Annotated[list[NodeCondition], MergeKey("type")] | None = None
    addresses: Annotated[list[NodeAddress], MergeKey("type")] | None = None
    daemon_endpoints: NodeDaemonEndpoints | None = None
    node_info: NodeSystemInfo | None = None
    images: list[ContainerImage] | None = None


class Node(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Node"] = "Node"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus | None = None


# --- namespaces, events, configuration ------------------------------------------


class NamespaceSpec(ApiModel):
    finalizers: list[str] | None = None


class NamespaceCondition(ApiModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    last_transition_time: Time | None = None
    reason: str | None = None
    message: str | None = None


class NamespaceStatus(ApiModel):
    phase: Literal["Active", "Terminating"] | None = None
    conditions: Annotated[list[NamespaceCondition], MergeKey("type")] | None = None


class Namespace(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Namespace"] = "Namespace"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: NamespaceSpec | None = None
    status: NamespaceStatus | None = None


class EventSource(ApiModel):
    component: str | None = None
    host: str | None = None


class EventSeries(ApiModel):
    count: int | None = None
    last_observed_time: Time | None = None


class Event(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Event"] = "Event"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    involved_object: ObjectReference
    reason: str | None = None
    message: str | None = None
    source: EventSource | None = None
    first_timestamp: Time | None = None
    last_timestamp: Time | None = None
    count: int | None = None
    type: Literal["Normal", "Warning"] | None = None
    event_time: Time | None = None
    series: EventSeries | None = None
    action: str | None = None
    related: ObjectReference | None = None
    reporting_component: str | None = None
    reporting_instance: str | None = None


class ConfigMap(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ConfigMap"] = "ConfigMap"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    data: dict[str, str] | None = None
    binary_data: dict[str, str] | None = None
    immutable: bool | None = None


class ServiceAccount(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ServiceAccount"] = "ServiceAccount"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    secrets: list[ObjectReference] | None = None
    image_pull_secrets: list[LocalObjectReference] | None = None
    automount_service_account_token: bool | None = None


class Secret(ApiModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Secret"] = "Secret"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None
    type: str = "Opaque"
    immutable: bool | None = None


# --- lists --------------------------------------------------------------------


class List(ApiModel):
    """A ``v1 List``: what ``kubectl create -f`` accepts holding many objects."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["List"] = "List"
    metadata: ListMeta | None = None
    items: list[dict[str, object]]
