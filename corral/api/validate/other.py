"""ConfigMaps, Secrets, Events, PodDisruptionBudgets, Leases and Namespaces."""

from __future__ import annotations

import base64
import binascii
import json

from corral.api.coordination import Lease
from corral.api.core import ConfigMap, Event, Namespace, Secret
from corral.api.errors import Cause
from corral.api.policy import PodDisruptionBudget
from corral.api.validate.checks import is_config_map_key
from corral.api.validate.common import (
    int_or_percent,
    not_more_than_100_percent,
    qualified_name,
    validate_label_selector,
)
from corral.api.validate.field import (
    IMMUTABLE,
    IS_NEGATIVE,
    child,
    forbidden,
    index,
    invalid,
    invalid_each,
    key,
    required,
    too_long,
)
from corral.api.validate.meta import finalizer_name

MAX_SECRET_SIZE = 1024 * 1024
REDACTED = "<secret contents redacted>"
_IMMUTABLE_SET = "field is immutable when `immutable` is set"
_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")

# Secret types with required keys, and the keys.
DOCKER_CONFIG_KEY = ".dockercfg"
DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"
# Fields of a new-style event (one with eventTime), by wire name, with their limits.
_EVENT_FIELD_LIMITS = (
    ("reportingInstance", "reporting_instance", 128),
    ("action", "action", 128),
    ("reason", "reason", 128),
)
_EVENT_NOTE_LIMIT = 1024


def _b64decode(value: str) -> tuple[bytes | None, str]:
    """Decode as Go's ``base64.StdEncoding`` does (line breaks ignored), or say why not."""
    cleaned = value.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(cleaned, validate=True), ""
    except (binascii.Error, ValueError):
        for i, ch in enumerate(value):
            if ch not in _B64_ALPHABET and ch not in "=\r\n":
                return None, f"illegal base64 data at input byte {i}"
        return None, f"illegal base64 data at input byte {max(len(cleaned) - 1, 0)}"


# --- config maps --------------------------------------------------------------------------


def validate_config_map(cm: ConfigMap) -> list[Cause]:
    causes: list[Cause] = []
    data = cm.data or {}
    binary = cm.binary_data or {}
    total = 0
    for k, v in data.items():
        path = key("data", k)
        causes.extend(invalid_each(path, k, is_config_map_key(k)))
        if k in binary:
            causes.append(invalid(path, k, "duplicate of key present in binaryData"))
        total += len(v.encode())
    for k, v in binary.items():
        path = key("binaryData", k)
        causes.extend(invalid_each(path, k, is_config_map_key(k)))
        decoded, err = _b64decode(v)
        if decoded is None:
            causes.append(invalid(path, "<binary data>", err))
        else:
            total += len(decoded)
    if total > MAX_SECRET_SIZE:
        # Kubernetes reports the size on the object as a whole.
        causes.append(too_long("", MAX_SECRET_SIZE))
    return causes


def validate_config_map_update(new: ConfigMap, old: ConfigMap) -> list[Cause]:
    if not old.immutable:
        return []
    causes: list[Cause] = []
    if not new.immutable:
        causes.append(forbidden("immutable", _IMMUTABLE_SET))
    if (new.data or {}) != (old.data or {}):
        causes.append(forbidden("data", _IMMUTABLE_SET))
    if (new.binary_data or {}) != (old.binary_data or {}):
        causes.append(forbidden("binaryData", _IMMUTABLE_SET))
    return causes


# --- secrets ------------------------------------------------------------------------------


def _secret_contents(secret: Secret, causes: list[Cause]) -> dict[str, bytes | None]:
    """Each key's decoded bytes (None when undecodable); stringData wins over data."""
    contents: dict[str, bytes | None] = {}
    for k, v in (secret.data or {}).items():
        path = key("data", k)
        causes.extend(invalid_each(path, k, is_config_map_key(k)))
        decoded, err = _b64decode(v)
        if decoded is None:
            causes.append(invalid(path, REDACTED, err))
        contents[k] = decoded
    for k, v in (secret.string_data or {}).items():
        causes.extend(invalid_each(key("stringData", k), k, is_config_map_key(k)))
        contents[k] = v.encode()
    return contents


def _json_object_error(raw: bytes) -> str:
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "invalid UTF-8 in JSON"
    except json.JSONDecodeError as err:
        if not raw.strip():
            return "unexpected end of JSON input"
        return f"invalid JSON: {err.msg} at byte {err.pos}"
    if not isinstance(parsed, dict):
        kind = _json_kind(parsed)
        return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    return ""


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return "number"


def validate_secret(secret: Secret) -> list[Cause]:
    causes: list[Cause] = []
    contents = _secret_contents(secret, causes)
    if sum(len(v) for v in contents.values() if v is not None) > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    kind = secret.type
    if kind == "kubernetes.io/service-account-token":
        name_key = "kubernetes.io/service-account.name"
        if not (secret.metadata.annotations or {}).get(name_key):
            causes.append(required(key("metadata.annotations", name_key)))
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        config_key = DOCKER_CONFIG_KEY if kind.endswith("dockercfg") else DOCKER_CONFIG_JSON_KEY
        path = key("data", config_key)
        if config_key not in contents:
            causes.append(required(path))
        else:
            raw = contents[config_key]
            err = _json_object_error(raw) if raw is not None else ""
            if err:
                causes.append(invalid(path, REDACTED, err))
    elif kind == "kubernetes.io/basic-auth":
        # Either may be empty, but one of the two must be there.
        if "username" not in contents and "password" not in contents:
            causes.append(required(key("data", "username")))
            causes.append(required(key("data", "password")))
    elif kind == "kubernetes.io/ssh-auth":
        if not contents.get("ssh-privatekey"):
            causes.append(required(key("data", "ssh-privatekey")))
    elif kind == "kubernetes.io/tls":
        for name in ("tls.crt", "tls.key"):
            if name not in contents:
                causes.append(required(key("data", name)))
    return causes


def _effective_data(secret: Secret) -> dict[str, str]:
    data = dict(secret.data or {})
    for k, v in (secret.string_data or {}).items():
        data[k] = base64.b64encode(v.encode()).decode()
    return data


def validate_secret_update(new: Secret, old: Secret) -> list[Cause]:
    causes: list[Cause] = []
    if new.type != old.type:
        causes.append(invalid("type", new.type, IMMUTABLE))
    if old.immutable:
        if not new.immutable:
            causes.append(forbidden("immutable", _IMMUTABLE_SET))
        if _effective_data(new) != _effective_data(old):
            causes.append(forbidden("data", _IMMUTABLE_SET))
    return causes


# --- events -------------------------------------------------------------------------------


def validate_event(event: Event) -> list[Cause]:
    causes: list[Cause] = []
    involved = event.involved_object
    if not (involved.kind or involved.name or involved.uid):
        causes.append(required("involvedObject"))
    namespace = event.metadata.namespace or ""
    involved_ns = involved.namespace or ""
    ns_path = "involvedObject.namespace"
    mismatch = "does not match event.namespace"
    if event.event_time is None:
        # Events about cluster-scoped objects live in "default".
        expected = (involved_ns,) if involved_ns else ("", "default")
        if namespace not in expected:
            causes.append(invalid(ns_path, involved_ns, mismatch))
        return causes
    if not involved_ns and namespace not in ("default", "kube-system"):
        causes.append(invalid(ns_path, involved_ns, mismatch))
    component = event.reporting_component or ""
    if not component:
        causes.append(required("reportingComponent"))
    causes.extend(qualified_name(component, "reportingComponent"))
    for wire, attr, limit in _EVENT_FIELD_LIMITS:
        value = getattr(event, attr) or ""
        if not value:
            causes.append(required(wire))
        elif len(value) > limit:
            causes.append(invalid(wire, "", f"can have at most {limit} characters"))
    if len(event.message or "") > _EVENT_NOTE_LIMIT:
        causes.append(invalid("message", "", f"can have at most {_EVENT_NOTE_LIMIT} characters"))
    return causes


# --- policy, coordination, namespaces ---------------------------------------------------------


def validate_pdb(pdb: PodDisruptionBudget) -> list[Cause]:
    spec = pdb.spec
    causes: list[Cause] = []
    if spec.min_available is not None and spec.max_unavailable is not None:
        causes.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for wire, value in (
        ("minAvailable", spec.min_available),
        ("maxUnavailable", spec.max_unavailable),
    ):
        if value is not None:
            causes.extend(int_or_percent(value, child("spec", wire)))
            causes.extend(not_more_than_100_percent(value, child("spec", wire)))
    causes.extend(validate_label_selector(spec.selector, "spec.selector"))
    return causes


def validate_lease(lease: Lease) -> list[Cause]:
    spec = lease.spec
    causes: list[Cause] = []
    if spec.lease_duration_seconds is not None and spec.lease_duration_seconds <= 0:
        causes.append(
            invalid(
                "spec.leaseDurationSeconds", spec.lease_duration_seconds, "must be greater than 0"
            )
        )
    if spec.lease_transitions is not None and spec.lease_transitions < 0:
        causes.append(invalid("spec.leaseTransitions", spec.lease_transitions, IS_NEGATIVE))
    return causes


def validate_namespace(ns: Namespace) -> list[Cause]:
    causes: list[Cause] = []
    for i, name in enumerate((ns.spec.finalizers if ns.spec else None) or ()):
        causes.extend(finalizer_name(name, index("spec.finalizers", i)))
    return causes
