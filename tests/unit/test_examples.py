"""examples/gluster.json: valid for corral's API, and consistent with itself.

Every item must decode strictly and validate as the API server would take
it. Beyond what the server checks one object at a time, the List must hang
together: selectors that select, references that resolve, mounts that name
a volume, Varnish backends that exist, resources that fit a small lab.

The pods come from ReplicationControllers and one Deployment (``mediawiki``,
so that ``corral rollout`` can roll it forward and back); the checks read the
pod templates and selectors of both kinds.

Each consistency check is a function returning its problems, so that
``test_checks_catch`` can prove, on broken copies of the List, that every
check does find what it is there to find.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from corral import replication
from corral.api import labels as labelsel
from corral.api.decode import decode
from corral.api.errors import ApiError
from corral.api.quantity import parse_quantity
from corral.api.resources import REGISTRY
from corral.api.validate import validate_object
from corral.objects import Obj

GLUSTER = Path(__file__).resolve().parents[2] / "examples" / "gluster.json"

IMAGES = {"httpd", "sitebuilder", "mediawiki", "mariadb", "varnish", "awstats"}
IMAGE_RE = re.compile(r"corral\.local/gluster/(?P<name>[a-z]+):1\.0")
PART_OF = "app.kubernetes.io/part-of"
TIERS = {"frontend", "backend", "db"}
# Three small lab nodes: what all replicas, and a rollout's surge pods, may request.
CPU_BUDGET = Decimal("1.5")
MEMORY_BUDGET = parse_quantity("2Gi")
NODE_PORT_RANGE = range(30000, 32768)
# What owns pods in the List, and the kind of its selector: a plain label map
# (an RC's) or a metav1.LabelSelector (an apps/v1 Deployment's or StatefulSet's).
WORKLOAD_KINDS = ("ReplicationController", "Deployment", "StatefulSet")


def load() -> Obj:
    with GLUSTER.open() as f:
        document: Obj = json.load(f)
    return document


def of_kind(document: Obj, kind: str) -> list[Obj]:
    return [item for item in document["items"] if item.get("kind") == kind]


def by_name(document: Obj, kind: str) -> dict[str, Obj]:
    return {item["metadata"]["name"]: item for item in of_kind(document, kind)}


def name_of(item: Obj) -> str:
    return f"{item.get('kind')}/{item.get('metadata', {}).get('name')}"


def workloads(document: Obj) -> list[Obj]:
    """Every item that owns pods: the RCs and the Deployment."""
    return [item for item in document["items"] if item.get("kind") in WORKLOAD_KINDS]


def workload(document: Obj, name: str) -> Obj:
    """The RC or Deployment called ``name``; there must be exactly one."""
    found = [w for w in workloads(document) if w["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} workloads named {name!r}"
    return found[0]


def selector_of(item: Obj) -> labelsel.LabelSelector:
    """A workload's selector: an RC's label map, or a Deployment's matchLabels/Expressions."""
    selector = item["spec"].get("selector")
    if item["kind"] == "ReplicationController":
        return labelsel.selector_from_set(selector)
    return labelsel.selector_from_dict(selector)


def templates(document: Obj) -> Iterator[tuple[str, Obj, Obj]]:
    """(where, template labels, pod spec) of every pod template in the List.

    A StatefulSet's pods also get a volume per claim template, as its
    controller gives them.
    """
    for item in workloads(document):
        template = item["spec"]["template"]
        spec = template["spec"]
        claims = item["spec"].get("volumeClaimTemplates") or []
        if claims:
            spec = {
                **spec,
                "volumes": [
                    *spec.get("volumes", []),
                    *({"name": c["metadata"]["name"], "persistentVolumeClaim": {}} for c in claims),
                ],
            }
        yield name_of(item), template["metadata"]["labels"], spec


def label_variants(document: Obj, where: str, labels: Obj) -> list[Obj]:
    """The labels a template's pods can carry: a replicated set's also get a role label."""
    item = next(w for w in workloads(document) if name_of(w) == where)
    hooks = replication.hooks_of(item["spec"]["template"])
    if hooks is None:
        return [labels]
    return [labels, *({**labels, hooks.role_label: role} for role in ("primary", "replica"))]


def containers(spec: Obj) -> Iterator[Obj]:
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


# --- the API's own checks ----------------------------------------------------------------


def api_problems(item: Obj) -> list[str]:
    """What corral's API server would say to ``item``: decoding, then validation."""
    rt = REGISTRY.by_kind(item.get("apiVersion", ""), item.get("kind", ""))
    if rt is None:
        return [f"{name_of(item)}: corral serves no {item.get('apiVersion')} {item.get('kind')}"]
    try:
        decoded = decode(rt, item, "Strict")
    except ApiError as error:
        return [f"{name_of(item)}: {error.message}"] + [
            f"{name_of(item)}: {c.field}: {c.message}" for c in error.causes
        ]
    return [f"{name_of(item)}: {c.field}: {c.message}" for c in validate_object(rt, decoded.model)]


# --- consistency checks -----------------------------------------------------------------------


def unique_name_problems(document: Obj) -> list[str]:
    counts = Counter(
        (item.get("kind"), item.get("metadata", {}).get("name")) for item in document["items"]
    )
    return [f"{kind}/{name} appears {n} times" for (kind, name), n in counts.items() if n > 1]


def namespace_problems(document: Obj) -> list[str]:
    # The stack goes to the current namespace; its DNS names assume so too.
    return [
        f"{name_of(item)}: sets metadata.namespace"
        for item in document["items"]
        if "namespace" in item.get("metadata", {})
    ]


def selector_problems(document: Obj) -> list[str]:
    """Every workload selects by some label, and selects its own template's pods."""
    problems = []
    for item in workloads(document):
        selector = item["spec"].get("selector") or {}
        template_labels = item["spec"]["template"]["metadata"].get("labels") or {}
        if not selector or selector_of(item).is_empty():
            problems.append(f"{name_of(item)}: no selector")
        elif not selector_of(item).matches(template_labels):
            problems.append(f"{name_of(item)}: selector {selector} misses its template's labels")
    return problems


def overlap_problems(document: Obj) -> list[str]:
    """No workload's selector may also select another's pods: they would fight over them."""
    problems = []
    items = workloads(document)
    for item in items:
        matcher = selector_of(item)
        for other in items:
            if other is not item and matcher.matches(
                other["spec"]["template"]["metadata"]["labels"]
            ):
                problems.append(f"{name_of(item)}: selector also selects {name_of(other)}'s pods")
    return problems


def rollout_problems(document: Obj) -> list[str]:
    """A Deployment rolls pods over one at a time and keeps revisions to undo to.

    ``maxUnavailable: 0`` keeps every replica serving while a rollout runs (the
    surge pod comes first); a ``revisionHistoryLimit`` of at least 1 leaves
    ``corral rollout undo`` an old ReplicaSet to go back to.
    """
    problems = []
    for item in of_kind(document, "Deployment"):
        spec = item["spec"]
        strategy = spec.get("strategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            problems.append(
                f"{name_of(item)}: strategy {strategy.get('type')!r}, not RollingUpdate"
            )
            continue
        rolling = strategy.get("rollingUpdate") or {}
        if rolling.get("maxUnavailable") != 0:
            problems.append(
                f"{name_of(item)}: maxUnavailable is {rolling.get('maxUnavailable')!r}, not 0"
            )
        if spec.get("revisionHistoryLimit", 10) < 1:
            problems.append(f"{name_of(item)}: keeps no old revision to undo to")
    return problems


def service_problems(document: Obj) -> list[str]:
    problems = []
    pods = list(templates(document))
    for svc in of_kind(document, "Service"):
        selector = svc["spec"].get("selector") or {}
        if not selector:
            problems.append(f"{name_of(svc)}: no selector")
            continue
        matcher = labelsel.selector_from_set(selector)
        selected = [
            (where, spec)
            for where, labels, spec in pods
            if any(matcher.matches(v) for v in label_variants(document, where, labels))
        ]
        if not selected:
            problems.append(f"{name_of(svc)}: selector {selector} matches no pod template")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for where, spec in selected:
                exposed = [
                    p
                    for c in spec["containers"]
                    for p in c.get("ports", [])
                    if target in (p.get("name"), p["containerPort"])
                ]
                if not exposed:
                    problems.append(
                        f"{name_of(svc)}: targetPort {target!r} is no container port of {where}"
                    )
            node_port = port.get("nodePort")
            if node_port is not None and node_port not in NODE_PORT_RANGE:
                problems.append(f"{name_of(svc)}: nodePort {node_port} outside 30000-32767")
    return problems


def pdb_problems(document: Obj) -> list[str]:
    problems = []
    pods = list(templates(document))
    for pdb in of_kind(document, "PodDisruptionBudget"):
        matcher = labelsel.selector_from_dict(pdb["spec"].get("selector"))
        covered = [where for where, pod_labels, _ in pods if matcher.matches(pod_labels)]
        if not covered:
            problems.append(f"{name_of(pdb)}: selects no pod template")
    return problems


def reference_problems(document: Obj) -> list[str]:
    """Every ConfigMap and Secret a pod uses, with every key it names, is in the List."""
    config_maps = {
        name: set(cm.get("data", {})) | set(cm.get("binaryData", {}))
        for name, cm in by_name(document, "ConfigMap").items()
    }
    secrets = {
        name: set(s.get("data", {})) | set(s.get("stringData", {}))
        for name, s in by_name(document, "Secret").items()
    }
    problems = []

    def check(where: str, kind: str, name: str | None, keys: list[str]) -> None:
        known = config_maps if kind == "ConfigMap" else secrets
        if name not in known:
            problems.append(f"{where}: {kind} {name!r} is not in the List")
            return
        problems.extend(
            f"{where}: {kind} {name!r} has no key {k!r}" for k in keys if k not in known[name]
        )

    for where, _, spec in templates(document):
        for volume in spec.get("volumes", []):
            at = f"{where} volume {volume['name']}"
            if "configMap" in volume:
                source = volume["configMap"]
                keys = [i["key"] for i in source.get("items", [])]
                check(at, "ConfigMap", source.get("name"), keys)
            if "secret" in volume:
                source = volume["secret"]
                keys = [i["key"] for i in source.get("items", [])]
                check(at, "Secret", source.get("secretName"), keys)
        for ctr in containers(spec):
            at = f"{where} container {ctr['name']}"
            for var in ctr.get("env", []):
                source = var.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    check(f"{at} env {var['name']}", "ConfigMap", ref.get("name"), [ref["key"]])
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    check(f"{at} env {var['name']}", "Secret", ref.get("name"), [ref["key"]])
            for source in ctr.get("envFrom", []):
                if "configMapRef" in source:
                    check(f"{at} envFrom", "ConfigMap", source["configMapRef"].get("name"), [])
                if "secretRef" in source:
                    check(f"{at} envFrom", "Secret", source["secretRef"].get("name"), [])
    return problems


def mount_problems(document: Obj) -> list[str]:
    """Every mount names a volume of its pod, and every volume is mounted."""
    problems = []
    for where, _, spec in templates(document):
        volumes = [v["name"] for v in spec.get("volumes", [])]
        mounted = set()
        for ctr in containers(spec):
            for mount in ctr.get("volumeMounts", []):
                mounted.add(mount["name"])
                if mount["name"] not in volumes:
                    problems.append(
                        f"{where} container {ctr['name']}: mounts {mount['name']!r}, "
                        "which is no volume of the pod"
                    )
        problems.extend(
            f"{where}: volume {v!r} is never mounted" for v in volumes if v not in mounted
        )
    return problems


def probe_port_problems(document: Obj) -> list[str]:
    """A probe's named port is one of its own container's ports."""
    problems = []
    for where, _, spec in templates(document):
        for ctr in spec["containers"]:
            names = {p.get("name") for p in ctr.get("ports", [])}
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = ctr.get(kind) or {}
                for action in ("httpGet", "tcpSocket"):
                    port = probe.get(action, {}).get("port")
                    if isinstance(port, str) and port not in names:
                        problems.append(
                            f"{where} container {ctr['name']}: {kind} port {port!r} is not named"
                        )
    return problems


def container_problems(document: Obj) -> list[str]:
    """Locally built images, never pulled if present, with requests and limits."""
    problems = []
    for where, _, spec in templates(document):
        for ctr in containers(spec):
            at = f"{where} container {ctr['name']}"
            match = IMAGE_RE.fullmatch(ctr.get("image", ""))
            if match is None or match["name"] not in IMAGES:
                problems.append(f"{at}: image {ctr.get('image')!r} is not one of the stack's")
            if ctr.get("imagePullPolicy") != "IfNotPresent":
                problems.append(f"{at}: imagePullPolicy is not IfNotPresent")
            resources = ctr.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(part, {}):
                        problems.append(f"{at}: no {part}.{resource}")
    return problems


def label_problems(document: Obj) -> list[str]:
    problems = []
    for item in document["items"]:
        if item["metadata"].get("labels", {}).get(PART_OF) != "gluster-web":
            problems.append(f"{name_of(item)}: not labelled {PART_OF}=gluster-web")
    for where, pod_labels, _ in templates(document):
        if "app" not in pod_labels or pod_labels.get("tier") not in TIERS:
            problems.append(f"{where}: template lacks an app label or a known tier")
        if pod_labels.get(PART_OF) != "gluster-web":
            problems.append(f"{where}: template not labelled {PART_OF}=gluster-web")
    return problems


def pod_requests(spec: Obj) -> tuple[Decimal, Decimal]:
    """What one pod requests: init containers run alone, so the larger of the two counts."""

    def total(ctrs: list[Obj], resource: str) -> Decimal:
        return sum(
            (
                parse_quantity(c.get("resources", {}).get("requests", {}).get(resource, 0))
                for c in ctrs
            ),
            Decimal(0),
        )

    init = spec.get("initContainers", [])
    return (
        max([total(spec["containers"], "cpu"), *(total([c], "cpu") for c in init)]),
        max([total(spec["containers"], "memory"), *(total([c], "memory") for c in init)]),
    )


def surge(item: Obj) -> int:
    """How many pods a Deployment's rollout may run beyond its replicas (0 for an RC).

    As in Kubernetes: ``maxSurge`` defaults to 25%, and a percentage rounds up.
    """
    strategy = item["spec"].get("strategy") or {}
    if item["kind"] != "Deployment" or strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0
    max_surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(max_surge, str):
        replicas: int = item["spec"].get("replicas", 1)
        return math.ceil(replicas * int(max_surge.rstrip("%")) / 100)
    return int(max_surge)


def budget_problems(document: Obj) -> list[str]:
    """The replicas, with the surge pods of a rollout, fit the lab."""
    cpu = memory = Decimal(0)
    for item in workloads(document):
        pods = item["spec"].get("replicas", 1) + surge(item)
        pod_cpu, pod_memory = pod_requests(item["spec"]["template"]["spec"])
        cpu += pods * pod_cpu
        memory += pods * pod_memory
    problems = []
    if cpu > CPU_BUDGET:
        problems.append(f"the replicas and surge pods request {cpu} CPU, more than {CPU_BUDGET}")
    if memory > MEMORY_BUDGET:
        problems.append(f"the replicas and surge pods request {memory / 2**20}Mi, more than 2Gi")
    return problems


BACKEND_RE = re.compile(r"^backend\s+(?P<name>\w+)\s*\{(?P<body>[^}]*)\}", re.MULTILINE)


def vcl_problems(document: Obj) -> list[str]:
    """Varnish's backends are Services of the List, or a port of its own pod."""
    problems = []
    vcl = by_name(document, "ConfigMap").get("varnish-vcl", {}).get("data", {}).get("default.vcl")
    if vcl is None:
        return ["ConfigMap varnish-vcl has no default.vcl"]
    services = by_name(document, "Service")
    varnish = workload(document, "varnish")["spec"]["template"]["spec"]
    own_ports = {p["containerPort"] for c in varnish["containers"] for p in c.get("ports", [])}
    backends = {m["name"]: m["body"] for m in BACKEND_RE.finditer(vcl)}
    if not backends:
        problems.append("varnish-vcl declares no backend")
    for name, body in backends.items():
        host = re.search(r'\.host\s*=\s*"([^"]+)"', body)
        port = re.search(r'\.port\s*=\s*"(\d+)"', body)
        if host is None or port is None:
            problems.append(f"VCL backend {name}: no .host or .port")
            continue
        if host[1] == "127.0.0.1":
            if int(port[1]) not in own_ports:
                problems.append(f"VCL backend {name}: no container of the varnish pod on {port[1]}")
        elif host[1] not in services:
            problems.append(f"VCL backend {name}: no Service {host[1]!r} in the List")
        elif int(port[1]) not in {p["port"] for p in services[host[1]]["spec"]["ports"]}:
            problems.append(f"VCL backend {name}: Service {host[1]} has no port {port[1]}")
    for needed in ("X-Cache", "vcl_deliver"):
        if needed not in vcl:
            problems.append(f"varnish-vcl lacks {needed}")
    return problems


CHECKS: dict[str, Callable[[Obj], list[str]]] = {
    "unique names": unique_name_problems,
    "no namespaces": namespace_problems,
    "selectors": selector_problems,
    "overlap": overlap_problems,
    "rollout": rollout_problems,
    "services": service_problems,
    "disruption budgets": pdb_problems,
    "references": reference_problems,
    "mounts": mount_problems,
    "probe ports": probe_port_problems,
    "containers": container_problems,
    "labels": label_problems,
    "budget": budget_problems,
    "vcl": vcl_problems,
}


# --- the tests --------------------------------------------------------------------------


def test_is_a_list() -> None:
    document = load()
    assert document["apiVersion"] == "v1"
    assert document["kind"] == "List"
    assert set(document) == {"apiVersion", "kind", "items"}
    kinds = Counter(item["kind"] for item in document["items"])
    assert kinds == {
        "Secret": 1,
        "ConfigMap": 3,
        "Service": 6,
        "ReplicationController": 2,
        "StatefulSet": 1,
        "Deployment": 1,
        "PodDisruptionBudget": 1,
    }


ITEM_NAMES = [name_of(item) for item in load()["items"]]


@pytest.mark.parametrize("index", range(len(ITEM_NAMES)), ids=ITEM_NAMES)
def test_item_is_valid_for_the_api(index: int) -> None:
    assert api_problems(load()["items"][index]) == []


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_list_is_consistent(check: Callable[[Obj], list[str]]) -> None:
    assert check(load()) == []


def test_the_front_door() -> None:
    document = load()
    varnish = by_name(document, "Service")["varnish"]["spec"]
    assert varnish["type"] == "NodePort"
    assert [(p["port"], p.get("nodePort")) for p in varnish["ports"]] == [(80, 30080)]
    budget = by_name(document, "PodDisruptionBudget")["mariadb"]["spec"]
    assert budget == {"minAvailable": 1, "selector": {"matchLabels": {"app": "mariadb"}}}
    # Readable demo values, and plainly marked as such.
    secret = by_name(document, "Secret")["mariadb-credentials"]
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        if key.endswith(("password", "key")):
            assert value.startswith("demo-"), key


def test_the_wiki_is_a_deployment() -> None:
    # So that `corral rollout status|undo deployment/mediawiki` work on it.
    wiki = workload(load(), "mediawiki")
    assert (wiki["apiVersion"], wiki["kind"]) == ("apps/v1", "Deployment")
    spec = wiki["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"app": "mediawiki"}}
    assert selector_of(wiki).matches(spec["template"]["metadata"]["labels"])
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert spec["minReadySeconds"] == 5
    assert spec["revisionHistoryLimit"] == 5
    assert spec["progressDeadlineSeconds"] == 600


def test_the_database_is_a_replicated_stateful_set() -> None:
    document = load()
    db = workload(document, "mariadb")
    assert (db["apiVersion"], db["kind"]) == ("apps/v1", "StatefulSet")
    spec = db["spec"]
    assert spec["replicas"] == 2
    assert spec["serviceName"] == "mariadb"
    assert by_name(document, "Service")["mariadb"]["spec"]["clusterIP"] == "None"
    # Data lives on a claim per copy, never in an emptyDir.
    assert [c["metadata"]["name"] for c in spec["volumeClaimTemplates"]] == ["data"]
    pod = spec["template"]["spec"]
    assert not any("emptyDir" in v for v in pod["volumes"])
    # Two copies never share a host.
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == [
        {
            "labelSelector": {"matchLabels": {"app": "mariadb"}},
            "topologyKey": "kubernetes.io/hostname",
        }
    ]
    hooks = replication.hooks_of(spec["template"])
    assert hooks is not None
    assert hooks.container == "mariadb"
    assert hooks.role_label == "role"
    # The Services applications use keep their names and follow the role labels.
    services = by_name(document, "Service")
    assert services["mariadb-primary"]["spec"]["selector"] == {"app": "mariadb", "role": "primary"}
    assert services["mariadb-replica"]["spec"]["selector"] == {"app": "mariadb", "role": "replica"}
    config = by_name(document, "ConfigMap")["mariadb-config"]["data"]["server.cnf"]
    for setting in (
        "read_only = ON",
        "rpl_semi_sync_slave_enabled = ON",
        "rpl_semi_sync_master_wait_point = AFTER_SYNC",
        "gtid_strict_mode = ON",
    ):
        assert setting in config


# --- the checks can fail ----------------------------------------------------------------


def _pod(document: Obj, name: str) -> Obj:
    spec: Obj = workload(document, name)["spec"]["template"]["spec"]
    return spec


def _unknown_field(d: Obj) -> None:
    _pod(d, "mediawiki")["containers"][0]["startupDelay"] = 5


def _bad_quantity(d: Obj) -> None:
    _pod(d, "website")["containers"][0]["resources"]["requests"]["cpu"] = "lots"


def _duplicate(d: Obj) -> None:
    d["items"].append(copy.deepcopy(by_name(d, "ConfigMap")["varnish-vcl"]))


def _namespaced(d: Obj) -> None:
    by_name(d, "Service")["website"]["metadata"]["namespace"] = "default"


def _selector_mismatch(d: Obj) -> None:
    workload(d, "website")["spec"]["selector"] = {"app": "www"}


def _deployment_selector_mismatch(d: Obj) -> None:
    workload(d, "mediawiki")["spec"]["selector"] = {"matchLabels": {"app": "wiki"}}


def _overlap(d: Obj) -> None:
    workload(d, "mariadb")["spec"]["selector"] = {"matchLabels": {PART_OF: "gluster-web"}}


def _deployment_overlap(d: Obj) -> None:
    # Its own pods and the website's are both tier=backend.
    workload(d, "mediawiki")["spec"]["selector"] = {"matchLabels": {"tier": "backend"}}


def _wiki_may_go_down(d: Obj) -> None:
    workload(d, "mediawiki")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 1


def _recreate(d: Obj) -> None:
    workload(d, "mediawiki")["spec"]["strategy"] = {"type": "Recreate"}


def _no_history(d: Obj) -> None:
    workload(d, "mediawiki")["spec"]["revisionHistoryLimit"] = 0


def _service_selects_nothing(d: Obj) -> None:
    by_name(d, "Service")["mariadb-replica"]["spec"]["selector"]["role"] = "standby"


def _target_port(d: Obj) -> None:
    by_name(d, "Service")["mediawiki"]["spec"]["ports"][0]["targetPort"] = "web"


def _pdb_selects_nothing(d: Obj) -> None:
    by_name(d, "PodDisruptionBudget")["mariadb"]["spec"]["selector"]["matchLabels"]["app"] = "db"


def _missing_config_map(d: Obj) -> None:
    d["items"].remove(by_name(d, "ConfigMap")["awstats-config"])


def _missing_secret_key(d: Obj) -> None:
    del by_name(d, "Secret")["mariadb-credentials"]["stringData"]["wiki-secret-key"]


def _missing_item_key(d: Obj) -> None:
    del by_name(d, "ConfigMap")["mariadb-config"]["data"]["server.cnf"]


def _mount_without_volume(d: Obj) -> None:
    _pod(d, "website")["volumes"] = []


def _unmounted_volume(d: Obj) -> None:
    _pod(d, "varnish")["volumes"].append({"name": "spare", "emptyDir": {}})


def _probe_port(d: Obj) -> None:
    _pod(d, "mariadb")["containers"][0]["readinessProbe"]["tcpSocket"]["port"] = "sql"


def _foreign_image(d: Obj) -> None:
    _pod(d, "varnish")["containers"][0]["image"] = "docker.io/library/varnish:7"


def _no_limits(d: Obj) -> None:
    del _pod(d, "website")["initContainers"][0]["resources"]["limits"]


def _unlabelled(d: Obj) -> None:
    del by_name(d, "ConfigMap")["varnish-vcl"]["metadata"]["labels"]


def _too_big(d: Obj) -> None:
    workload(d, "mediawiki")["spec"]["replicas"] = 10


def _surge_too_big(d: Obj) -> None:
    # The replicas alone still fit: only the rollout's three extra wiki pods do not.
    workload(d, "mediawiki")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 3


def _unknown_backend(d: Obj) -> None:
    vcl = by_name(d, "ConfigMap")["varnish-vcl"]["data"]
    vcl["default.vcl"] = vcl["default.vcl"].replace('.host = "website"', '.host = "www"')


BREAKAGES: list[tuple[str, Callable[[Obj], None], Callable[[Obj], list[str]]]] = [
    ("unknown field", _unknown_field, lambda d: api_problems(workload(d, "mediawiki"))),
    ("bad quantity", _bad_quantity, lambda d: api_problems(workload(d, "website"))),
    ("duplicate", _duplicate, unique_name_problems),
    ("namespaced", _namespaced, namespace_problems),
    ("selector mismatch", _selector_mismatch, selector_problems),
    ("selector mismatch (api)", _selector_mismatch, lambda d: api_problems(workload(d, "website"))),
    ("deployment selector mismatch", _deployment_selector_mismatch, selector_problems),
    (
        "deployment selector mismatch (api)",
        _deployment_selector_mismatch,
        lambda d: api_problems(workload(d, "mediawiki")),
    ),
    ("overlapping selectors", _overlap, overlap_problems),
    ("deployment overlaps an rc", _deployment_overlap, overlap_problems),
    ("rollout may take a pod down", _wiki_may_go_down, rollout_problems),
    ("rollout recreates", _recreate, rollout_problems),
    ("no revision to undo to", _no_history, rollout_problems),
    ("service selects nothing", _service_selects_nothing, service_problems),
    ("unknown target port", _target_port, service_problems),
    ("pdb selects nothing", _pdb_selects_nothing, pdb_problems),
    ("missing config map", _missing_config_map, reference_problems),
    ("missing secret key", _missing_secret_key, reference_problems),
    ("missing item key", _missing_item_key, reference_problems),
    ("mount without volume", _mount_without_volume, mount_problems),
    ("unmounted volume", _unmounted_volume, mount_problems),
    ("unnamed probe port", _probe_port, probe_port_problems),
    ("foreign image", _foreign_image, container_problems),
    ("no limits", _no_limits, container_problems),
    ("unlabelled", _unlabelled, label_problems),
    ("over budget", _too_big, budget_problems),
    ("rollout surge over budget", _surge_too_big, budget_problems),
    ("unknown backend", _unknown_backend, vcl_problems),
]


@pytest.mark.parametrize(
    ("break_it", "check"), [(b, c) for _, b, c in BREAKAGES], ids=[n for n, _, _ in BREAKAGES]
)
def test_checks_catch(break_it: Callable[[Obj], None], check: Callable[[Obj], list[str]]) -> None:
    document = load()
    assert check(document) == []
    break_it(document)
    assert check(document) != []
