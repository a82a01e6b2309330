"""Kubernetes' protobuf wire form (application/vnd.kubernetes.protobuf) read into JSON objects.

client-go's typed clients (kubectl create configmap|secret|deployment|job|token)
send bodies as the 4-byte magic ``k8s\\0`` and a runtime.Unknown envelope: the
object's apiVersion and kind, and the bytes of the typed message generated from
upstream's generated.proto (corral/proto/k8s). The result is the object the
JSON path would have read, written as Go's encoding/json writes the Go struct:
the special types in their JSON forms (Time, MicroTime, Duration, Quantity,
IntOrString, RawExtension, FieldsV1), bytes as base64, and the struct shape
that the proto does not carry (inlined fields, JSON names, which zero values
JSON keeps) from corral/proto/k8s/goshape.json, derived from the Go tags.
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

_PROTO_PACKAGE = "corral.proto.k8s.io"
_MODULES = (
    "apimachinery.pkg.apis.meta.v1",
    "apimachinery.pkg.runtime",
    "api.core.v1",
    "api.apps.v1",
    "api.batch.v1",
    "api.policy.v1",
    "api.coordination.v1",
    "api.storage.v1",
    "api.rbac.v1",
    "api.authentication.v1",
    "api.autoscaling.v1",
)
# The API group of each generated package; "" is the core (legacy) group.
_GROUP_PACKAGES = {
    "": "k8s.io.api.core",
    "apps": "k8s.io.api.apps",
    "batch": "k8s.io.api.batch",
    "policy": "k8s.io.api.policy",
    "coordination.k8s.io": "k8s.io.api.coordination",
    "storage.k8s.io": "k8s.io.api.storage",
    "rbac.authorization.k8s.io": "k8s.io.api.rbac",
    "authentication.k8s.io": "k8s.io.api.authentication",
    "autoscaling": "k8s.io.api.autoscaling",
    "meta.k8s.io": "k8s.io.apimachinery.pkg.apis.meta",
}
_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_TIME = _META + "Time"
_MICRO_TIME = _META + "MicroTime"
_DURATION = _META + "Duration"
_FIELDS_V1 = _META + "FieldsV1"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf object corral can read."""


class NotServedAsProtobuf(ProtobufError):
    """A kind with no protobuf form here (custom resources): kube-apiserver answers 415."""


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    # Imported on first use: the generated core/v1 module alone is 100 kB of descriptors.
    for module in _MODULES:
        importlib.import_module(f"{_PROTO_PACKAGE}.{module}.generated_pb2")
    return descriptor_pool.Default()


@functools.cache
def _shapes() -> dict[str, dict[str, str]]:
    text = resources.files("corral.proto.k8s").joinpath("goshape.json").read_text()
    shapes: dict[str, dict[str, str]] = json.loads(text)
    return shapes


def message_class(api_version: str, kind: str) -> type[Message] | None:
    """The generated class of a built-in kind's wire form, or None (custom kinds have none)."""
    group, _, version = api_version.rpartition("/")
    package = _GROUP_PACKAGES.get(group)
    if package is None or not version or not kind.isidentifier():
        return None
    try:
        descriptor = _pool().FindMessageTypeByName(f"{package}.{version}.{kind}")
    except KeyError:
        return None
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object a protobuf body holds; ProtobufError naming what is wrong."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the protobuf body does not begin with the Kubernetes magic k8s\\x00")
    unknown = message_factory.GetMessageClass(_pool().FindMessageTypeByName(_UNKNOWN))()
    _parse(unknown, body[len(MAGIC) :], "runtime.Unknown envelope")
    api_version = unknown.typeMeta.apiVersion
    kind = unknown.typeMeta.kind
    if not api_version or not kind:
        raise ProtobufError("the protobuf envelope names no apiVersion and kind")
    if unknown.contentEncoding:
        raise ProtobufError(f"unsupported protobuf content encoding {unknown.contentEncoding!r}")
    cls = message_class(api_version, kind)
    if cls is None:
        raise NotServedAsProtobuf(f"{api_version}, Kind={kind} is not served as protobuf")
    typed = cls()
    _parse(typed, unknown.raw, f"{api_version} {kind}")
    return {"kind": kind, "apiVersion": api_version, **_message(typed)}


def _parse(message: Message, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise ProtobufError(f"the {what} is not valid protobuf: {error}") from None


def _message(message: Message) -> Any:
    """One message as Go's encoding/json writes the struct it came from."""
    name = message.DESCRIPTOR.full_name
    special = _SPECIAL.get(name)
    if special is not None:
        return special(message)
    descriptor = message.DESCRIPTOR
    if _is_list_wrapper(descriptor):
        return [_value(f, v) for f, v in message.ListFields() for v in v] or None
    shape = _shapes().get(name, {})
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        flags = shape.get(field.name, "")
        if "inline" in flags:
            inner = _message(value)
            out.update(inner if isinstance(inner, dict) else {})
            continue
        key = flags.partition("json=")[2].split(",")[0] or field.name
        if _is_map(field):
            out[key] = {k: _value(_map_value_field(field), v) for k, v in value.items()}
        elif field.is_repeated:
            out[key] = [_value(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE or value or "keepzero" in flags:
            out[key] = _value(field, value)
    return out


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _is_map(field: FieldDescriptor) -> bool:
    message_type = field.message_type
    return message_type is not None and message_type.GetOptions().map_entry


def _map_value_field(field: FieldDescriptor) -> FieldDescriptor:
    return field.message_type.fields_by_name["value"]


def _is_list_wrapper(descriptor: Descriptor) -> bool:
    """go-to-protobuf's wrapper of a nullable slice (ExtraValue, Verbs): JSON has the bare list."""
    fields = descriptor.fields
    return len(fields) == 1 and fields[0].name == "items" and fields[0].is_repeated


def _time(message: Any) -> str | None:
    # Go's zero Time is written as no bytes at all, and as JSON null; nanos are
    # not kept (metav1.Time is second-precision on both wires).
    if not message.HasField("seconds"):
        return None
    moment = datetime.fromtimestamp(message.seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(message: Any) -> str | None:
    if not message.HasField("seconds"):
        return None
    moment = datetime.fromtimestamp(message.seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{message.nanos // 1000:06d}Z"


def _quantity(message: Any) -> str:
    return message.string or "0"


def _int_or_string(message: Any) -> int | str:
    chosen: int | str = message.strVal if message.type == 1 else message.intVal
    return chosen


def _embedded_json(raw: bytes) -> Any:
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ProtobufError(f"an embedded object is not valid JSON: {error}") from None


def go_duration(nanoseconds: int) -> str:
    """time.Duration.String(): 1h2m3.5s, 1.5ms, 0s."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    left = abs(nanoseconds)
    if left < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if left >= size:
                return sign + _decimal(left, size) + unit
    seconds, fraction = divmod(left, 1_000_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = _decimal(seconds * 1_000_000_000 + fraction, 1_000_000_000) + "s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


_SPECIAL: dict[str, Any] = {
    _TIME: _time,
    _MICRO_TIME: _micro_time,
    _DURATION: lambda m: go_duration(m.duration),
    _QUANTITY: _quantity,
    _INT_OR_STRING: _int_or_string,
    _RAW_EXTENSION: lambda m: _embedded_json(m.raw),
    _FIELDS_V1: lambda m: _embedded_json(m.Raw),
}
