"""Partial object metadata: an object, a list or a watch event as its metadata alone.

controller-runtime's metadata-only watches, kubectl and the garbage
collector ask for ``as=PartialObjectMetadata(List);g=meta.k8s.io;v=v1``:
the same objects, their kind PartialObjectMetadata, apiVersion
meta.k8s.io/v1, and nothing but metadata. The shapes are kube-apiserver's
(handlers/response.go): a list's items are PartialObjectMetadata each, and
asking a single object for a list (or a list for a single object) is 406.
"""

from __future__ import annotations

from controlplane.apiserver.lists import ListResult
from controlplane.apiserver.negotiation import PARTIAL, PARTIAL_LIST, Output
from corral.api import errors
from corral.api.resources import ResourceType
from corral.objects import Obj


def metadata_only(obj: Obj, output: Output) -> Obj:
    """``obj`` as a PartialObjectMetadata of ``output``'s version."""
    return {"kind": PARTIAL, "apiVersion": output.api_version, "metadata": obj.get("metadata", {})}


def partial_object(rt: ResourceType, obj: Obj, output: Output) -> Obj:
    """The response to a GET (or a write) that asked for partial metadata."""
    if output.convert != PARTIAL:
        raise errors.not_acceptable(
            f"you requested {output.convert}, but the requested object is not a list ({rt.kind})"
        )
    return metadata_only(obj, output)


def partial_list(rt: ResourceType, result: ListResult, output: Output) -> Obj:
    """The response to a LIST that asked for partial metadata."""
    if output.convert != PARTIAL_LIST:
        raise errors.not_acceptable(
            f"you requested {output.convert}, but the requested object is a list ({rt.list_kind})"
        )
    metadata: Obj = {"resourceVersion": str(result.revision)}
    if result.continue_token:
        metadata["continue"] = result.continue_token
    if result.remaining:
        metadata["remainingItemCount"] = result.remaining
    return {
        "kind": PARTIAL_LIST,
        "apiVersion": output.api_version,
        "metadata": metadata,
        "items": [metadata_only(obj, output) for obj in result.items],
    }


def converts_events(output: Output) -> bool:
    """Whether a watch sends its events' objects as PartialObjectMetadata.

    Kubernetes converts each event's object to the kind asked for; asked for a
    PartialObjectMetadataList, the conversion of a single object fails and the
    object goes out whole, as it does here.
    """
    return output.convert == PARTIAL
