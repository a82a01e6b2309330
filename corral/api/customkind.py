"""What the server needs to serve one version of a custom kind, beyond its names.

A leaf module: corral.api.resources refers to CustomKind from ResourceType,
and corral.api.crd builds it from a CustomResourceDefinition, so neither
imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.api import crd_schema
from corral.api.errors import Cause
from corral.objects import Obj


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    format: str = ""
    description: str = ""
    priority: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class CustomKind:
    """What the server needs beyond a ResourceType's names to serve one custom version."""

    crd_name: str
    storage_version: str
    schema: dict[str, Any] | None
    status: bool = False
    spec_replicas_path: str = ""
    status_replicas_path: str = ""
    label_selector_path: str = ""
    printer_columns: tuple[PrinterColumn, ...] = ()
    list_kind: str = ""
    preserve_unknown_fields: bool = False
    versions: tuple[str, ...] = field(default=())

    def process(self, body: Obj, pruned: list[str] | None = None) -> list[Cause]:
        """Prune, default and validate ``body`` in place; the problems, field by field.

        The paths of the fields pruned go to ``pruned``.
        """
        if self.schema is None:
            return []
        if not self.preserve_unknown_fields:
            crd_schema.prune(body, self.schema, root=True, pruned=pruned)
        crd_schema.apply_defaults(body, self.schema)
        return crd_schema.validate(body, self.schema, "")
