"""The base of every API model, and the markers patch metadata hangs on.

Models are strict: ``"replicas": "3"`` is a type error, as in Kubernetes,
rather than something quietly coerced. Python attributes are snake_case;
the wire names are camelCase, with explicit aliases where Kubernetes spells
an acronym in capitals (``hostIP``, ``podCIDR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        validate_default=False,
        ser_json_timedelta="float",
    )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class MergeKey:
    """Strategic merge patch merges this list's items by the named key."""

    key: str


@dataclass(frozen=True, slots=True)
class MergeSet:
    """Strategic merge patch merges this list of primitives as a set."""


@dataclass(frozen=True, slots=True)
class RetainKeys:
    """Strategic merge patch may clear this struct's unlisted keys ($retainKeys)."""


def _check_time(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PydanticCustomError(
            "FieldValueInvalid",
            'Invalid value: "{value}": must be an RFC 3339 timestamp '
            'such as "2006-01-02T15:04:05Z"',
            {"value": value},
        ) from None
    if parsed.tzinfo is None:
        raise PydanticCustomError(
            "FieldValueInvalid",
            'Invalid value: "{value}": an RFC 3339 timestamp needs a time zone',
            {"value": value},
        )
    return value


Time = Annotated[str, AfterValidator(_check_time)]
"""An RFC 3339 timestamp, kept as the string the client sent."""

IntOrString = int | str


def _canonical_quantity(value: object) -> object:
    # Imported here: quantity.py is a leaf module, but keeping base.py free of
    # it at import time keeps the model modules cheap to import in tools.
    from corral.api.quantity import QuantityError, canonicalize_quantity

    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return value  # not a quantity at all: the str check reports the type
    try:
        return canonicalize_quantity(value)
    except QuantityError as error:
        raise PydanticCustomError(
            "FieldValueInvalid",
            'Invalid value: "{value}": {detail}',
            {"value": value, "detail": str(error)},
        ) from None


Quantity = Annotated[str, BeforeValidator(_canonical_quantity)]
"""A resource quantity: "500m", "128Mi", 2 or 0.5 in, Kubernetes' canonical string out."""
