"""A hand-written PatchSchema for pod-like objects, as corral would derive it."""

from __future__ import annotations

from typing import Any

from corral.patch import PatchSchema

CONTAINER = PatchSchema(
    fields={
        "ports": PatchSchema(list_strategy="merge", merge_key="containerPort"),
        "env": PatchSchema(list_strategy="merge", merge_key="name"),
        "volumeMounts": PatchSchema(list_strategy="merge", merge_key="mountPath"),
    }
)

# Kubernetes tags the volumes list "merge,retainKeys"; the flag sits on the
# volume struct here, which is how corral's schema describes retainKeys.
VOLUME = PatchSchema(retain_keys=True)

POD = PatchSchema(
    fields={
        "metadata": PatchSchema(
            fields={
                "labels": PatchSchema(values=PatchSchema()),
                "annotations": PatchSchema(values=PatchSchema()),
                "finalizers": PatchSchema(list_strategy="merge"),
            }
        ),
        "spec": PatchSchema(
            fields={
                "containers": PatchSchema(list_strategy="merge", merge_key="name", items=CONTAINER),
                "volumes": PatchSchema(list_strategy="merge", merge_key="name", items=VOLUME),
                "tolerations": PatchSchema(list_strategy="replace"),
            }
        ),
    }
)


def pod(**spec: Any) -> dict[str, Any]:
    """A small pod with one container, overridable per spec field."""
    body: dict[str, Any] = {
        "containers": [{"name": "web", "image": "nginx:1.25"}],
    }
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": body,
    }
