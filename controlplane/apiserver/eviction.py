"""``POST /api/v1/namespaces/{ns}/pods/{name}/eviction``: a delete that honours disruption budgets.

An eviction is granted when no PodDisruptionBudget selects the pod, or the
one that does still allows a disruption. Granting spends the budget first:
``disruptionsAllowed`` goes down by one and the pod is recorded in
``disruptedPods``, in one compare-and-swap on the budget's status, so two
evictions racing for the last disruption cannot both win. Only then is the
pod deleted, with the caller's deleteOptions.

As in Kubernetes, pods that are not running anything worth protecting
(Pending, finished, or already terminating) are evicted without a budget
check, and a running pod that is not ready may go without spending budget
when the budget is healthy anyway (or its unhealthyPodEvictionPolicy is
AlwaysAllow); that delete carries the pod's resourceVersion, so a pod
that turned ready meanwhile is not taken.
"""

from __future__ import annotations

import copy

from starlette.requests import Request
from starlette.responses import Response

from controlplane.apiserver import http, params, switchover
from controlplane.apiserver.lists import list_objects
from controlplane.apiserver.objects import Objects
from controlplane.apiserver.params import ListOptions
from controlplane.controllers.podutil import is_ready, is_terminal, is_terminating
from controlplane.query import EMPTY, request_query
from controlplane.storage.store import Stored
from corral import replication
from corral.api import errors
from corral.api.decode import decode
from corral.api.errors import ApiError, Cause
from corral.api.labels import NOTHING, SelectorError, selector_from_dict
from corral.api.meta import DeleteOptions
from corral.api.policy import Eviction
from corral.api.resources import ResourceType
from corral.clock import rfc3339
from corral.objects import Obj, spec, status

# An Eviction is a few hundred bytes; anything near this is not one.
MAX_BODY_BYTES = 256 * 1024
# Kubernetes' limit on evictions the disruption controller has not yet confirmed.
MAX_DISRUPTED_PODS = 2000
REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


def _too_many_requests(cause: str) -> ApiError:
    return ApiError(429, "TooManyRequests", REFUSED, causes=[Cause("DisruptionBudget", cause)])


async def serve_eviction(request: Request, objects: Objects, namespace: str, name: str) -> Response:
    pods_rt = _kind(objects, "v1", "Pod")
    pdbs_rt = _kind(objects, "policy/v1", "PodDisruptionBudget")
    body = await http.read_body(request, MAX_BODY_BYTES)
    document = await http.decode_document(body, http.media_type(request), MAX_BODY_BYTES)
    eviction = decode(None, document, "Strict", model=Eviction).model
    assert isinstance(eviction, Eviction)
    if eviction.metadata.name and eviction.metadata.name != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    if eviction.metadata.namespace and eviction.metadata.namespace != namespace:
        raise errors.bad_request("namespace in URL does not match namespace in Eviction object")
    options = eviction.delete_options or DeleteOptions()
    dry_run = params.dry_run(request_query(request.scope)) or bool(options.dry_run)

    pod = (await objects.get(pods_rt, namespace, name)).obj
    if _protected(pod) and replication.leads(pod):
        await switchover.request_switchover(objects, pods_rt, pod, dry_run)
    revision = await _admit(objects, pdbs_rt, pod, dry_run) if _protected(pod) else None
    await _delete(objects, pods_rt, namespace, name, options, dry_run, revision)
    return http.json_response(http.success_status(code=201), 201)


async def _admit(objects: Objects, pdbs_rt: ResourceType, pod: Obj, dry_run: bool) -> str | None:
    """Check (and spend) the pod's budget; the resourceVersion the delete must match, if any."""
    metadata = pod["metadata"]
    budgets = await _budgets_for(objects, pdbs_rt, metadata["namespace"], pod)
    if len(budgets) > 1:
        raise errors.internal(
            "This pod has more than one PodDisruptionBudget, which the eviction "
            "subresource does not support."
        )
    if not budgets or await _spend(objects, pdbs_rt, budgets[0], pod, dry_run):
        return None
    # Let go without spending budget because it is not ready: only while it still
    # is not, so the delete is tied to the version that was judged.
    return str(metadata.get("resourceVersion") or "") or None


def _kind(objects: Objects, api_version: str, kind: str) -> ResourceType:
    found = objects.registry.by_kind(api_version, kind)
    if found is None:
        raise errors.internal(f"the server does not serve {kind}")
    return found


def _protected(pod: Obj) -> bool:
    """Whether evicting the pod is a disruption a budget has a say in."""
    phase = status(pod).get("phase")
    return not (phase == "Pending" or is_terminal(pod) or is_terminating(pod))


async def _budgets_for(
    objects: Objects, pdbs_rt: ResourceType, namespace: str, pod: Obj
) -> list[Obj]:
    """The budgets in the pod's namespace that select it (a consistent list)."""
    listed = await list_objects(objects, pdbs_rt, namespace, ListOptions.parse(EMPTY))
    labels = pod["metadata"].get("labels") or {}
    found = []
    for pdb in listed.items:
        try:
            selector = selector_from_dict(spec(pdb).get("selector"), if_none=NOTHING)
        except SelectorError:
            continue  # an invalid selector matches nothing
        if selector.matches(labels):
            found.append(pdb)
    return found


async def _spend(
    objects: Objects, pdbs_rt: ResourceType, pdb: Obj, pod: Obj, dry_run: bool
) -> bool:
    """Take one disruption from the budget; False when the pod may go without spending one.

    Raises 429 when the budget allows none. The decision is made on the
    budget as stored and written with a compare on its revision; when
    another eviction wins the race, it is made again on the new state.
    """
    spent = True
    now = rfc3339(objects.clock.now())
    pdb_name = pdb["metadata"]["name"]
    name = pod["metadata"]["name"]

    def decide(current: Stored) -> Obj | None:
        nonlocal spent
        budget = current.obj
        spec = budget.get("spec") or {}
        status = budget.get("status") or {}
        if not is_ready(pod):
            always = spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
            healthy = int(status.get("currentHealthy") or 0)
            desired = int(status.get("desiredHealthy") or 0)
            if always or (desired > 0 and healthy >= desired):
                spent = False
                return None
        generation = int(budget["metadata"].get("generation") or 0)
        if int(status.get("observedGeneration") or 0) < generation:
            raise _too_many_requests(
                f"The disruption budget {pdb_name} is still being processed by the server."
            )
        allowed = int(status.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise errors.forbidden("pdb disruptions allowed is negative")
        disrupted = dict(status.get("disruptedPods") or {})
        if len(disrupted) > MAX_DISRUPTED_PODS:
            raise errors.forbidden(
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
            )
        if allowed == 0:
            raise _too_many_requests(
                f"The disruption budget {pdb_name} needs {status.get('desiredHealthy', 0)} "
                f"healthy pods and has {status.get('currentHealthy', 0)} currently"
            )
        new = copy.deepcopy(budget)
        new_status = new.setdefault("status", {})
        new_status["disruptionsAllowed"] = allowed - 1
        disrupted[name] = now
        new_status["disruptedPods"] = disrupted
        if allowed - 1 == 0:
            new_status["conditions"] = _insufficient(new_status.get("conditions") or [], now)
        return new

    await objects.guaranteed_update(
        pdbs_rt,
        pdb["metadata"]["namespace"],
        pdb_name,
        decide,
        subresource="status",
        dry_run=dry_run,
    )
    return spent


def _insufficient(conditions: list[Obj], now: str) -> list[Obj]:
    """DisruptionAllowed turns False with the last disruption spent, as Kubernetes' helper does."""
    out = [c for c in conditions if c.get("type") != "DisruptionAllowed"]
    previous = next((c for c in conditions if c.get("type") == "DisruptionAllowed"), {})
    out.append(
        {
            **previous,
            "type": "DisruptionAllowed",
            "status": "False",
            "reason": "InsufficientPods",
            "message": "",
            "lastTransitionTime": (
                previous.get("lastTransitionTime") if previous.get("status") == "False" else now
            ),
        }
    )
    return out


async def _delete(
    objects: Objects,
    pods_rt: ResourceType,
    namespace: str,
    name: str,
    options: DeleteOptions,
    dry_run: bool,
    revision: str | None,
) -> None:
    preconditions = options.preconditions
    policy = options.propagation_policy
    if policy is None and options.orphan_dependents is not None:
        policy = "Orphan" if options.orphan_dependents else "Background"
    await objects.delete(
        pods_rt,
        namespace,
        name,
        grace_period_seconds=options.grace_period_seconds,
        propagation_policy=policy,
        precondition_uid=preconditions.uid if preconditions else None,
        precondition_revision=revision
        or (preconditions.resource_version if preconditions else None),
        dry_run=dry_run,
    )
