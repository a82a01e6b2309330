"""JSON objects written in Kubernetes' protobuf wire form: the inverse of corral.api.protobuf.

What client-go does when it sends a typed object as application/vnd.kubernetes.protobuf;
the tests round-trip every built-in kind through it and the decoder.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from corral.api import protobuf as pb


def encode(obj: dict[str, Any]) -> bytes:
    """``k8s\\0`` + runtime.Unknown{typeMeta, raw=the typed message} for a built-in kind."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    cls = pb.message_class(api_version, kind)
    if cls is None:
        raise ValueError(f"{api_version}, Kind={kind} has no protobuf message")
    typed = cls()
    _fill(typed, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
    unknown_class = message_factory.GetMessageClass(pb._pool().FindMessageTypeByName(pb._UNKNOWN))
    unknown: Any = unknown_class()
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    unknown.raw = typed.SerializeToString()
    envelope: bytes = unknown.SerializeToString()
    return pb.MAGIC + envelope


def _fill(message: Any, value: Any) -> None:
    name = message.DESCRIPTOR.full_name
    special = _SPECIAL.get(name)
    if special is not None:
        special(message, value)
        return
    if pb._is_list_wrapper(message.DESCRIPTOR):
        message.items.extend(value or [])
        return
    shape = pb._shapes().get(name, {})
    for field in message.DESCRIPTOR.fields:
        flags = shape.get(field.name, "")
        if "inline" in flags:
            _fill(getattr(message, field.name), value)
            continue
        key = flags.partition("json=")[2].split(",")[0] or field.name
        if key not in value:
            continue
        if value[key] is not None:
            _set(message, field, value[key])
        elif field.message_type is not None and not field.is_repeated:
            # Go writes a zero struct (a null Time) as an empty message.
            getattr(message, field.name).SetInParent()


def _set(message: Any, field: FieldDescriptor, value: Any) -> None:
    target = getattr(message, field.name)
    if pb._is_map(field):
        value_field = pb._map_value_field(field)
        for key, item in value.items():
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                _fill(target[key], item)
            else:
                target[key] = _scalar(value_field, item)
    elif field.is_repeated:
        for item in value:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _fill(target.add(), item)
            else:
                target.append(_scalar(field, item))
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        target.SetInParent()
        _fill(target, value)
    else:
        setattr(message, field.name, _scalar(field, value))


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64decode(value)
    return value


def _time(message: Any, value: str) -> None:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    message.seconds = int(moment.timestamp())
    if message.DESCRIPTOR.full_name == pb._MICRO_TIME:
        message.nanos = moment.microsecond * 1000


def _int_or_string(message: Any, value: int | str) -> None:
    if isinstance(value, str):
        message.type, message.strVal = 1, value
    else:
        message.type, message.intVal = 0, value


def _embedded(field_name: str) -> Any:
    def fill(message: Message, value: Any) -> None:
        setattr(message, field_name, orjson.dumps(value))

    return fill


_SPECIAL: dict[str, Any] = {
    pb._TIME: _time,
    pb._MICRO_TIME: _time,
    pb._QUANTITY: lambda m, v: setattr(m, "string", str(v)),
    pb._INT_OR_STRING: _int_or_string,
    pb._RAW_EXTENSION: _embedded("raw"),
    pb._FIELDS_V1: _embedded("Raw"),
}
