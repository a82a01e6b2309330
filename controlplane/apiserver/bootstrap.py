"""Objects every cluster has from the start: the default namespaces."""

from __future__ import annotations

import logging

from controlplane.apiserver.objects import Objects
from corral.api.errors import ApiError
from corral.api.resources import Registry

log = logging.getLogger(__name__)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def ensure_default_namespaces(objects: Objects, registry: Registry) -> None:
    rt = registry.by_kind("v1", "Namespace")
    assert rt is not None
    for name in DEFAULT_NAMESPACES:
        try:
            await objects.create(rt, None, {"metadata": {"name": name}})
            log.info("created namespace %s", name)
        except ApiError as error:
            if error.reason != "AlreadyExists":
                raise
