"""The Accept header: which representation a client asked for, as kube-apiserver chooses it.

An Accept header is a list of media ranges, each perhaps with a conversion
(``application/json;as=Table;g=meta.k8s.io;v=v1``). The server takes the
ranges in order of preference (q, then the more specific first) and serves
the first it can: a media type it encodes (JSON or YAML; not protobuf or
CBOR, which client-go offers first) whose conversion, if any, is one it
knows. None servable is 406 NotAcceptable. Whether the conversion fits the
request (a PartialObjectMetadataList asked of a single object) is judged
after the choice, as Kubernetes does: a fallback is not tried then.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from corral.api import errors

META_GROUP = "meta.k8s.io"
TABLE = "Table"
PARTIAL = "PartialObjectMetadata"
PARTIAL_LIST = "PartialObjectMetadataList"
_CONVERSIONS = {
    TABLE: ("v1", "v1beta1"),
    PARTIAL: ("v1", "v1beta1"),
    PARTIAL_LIST: ("v1", "v1beta1"),
}
_SUBTYPES = {"json": False, "yaml": True, "*": False}
ACCEPTED = "application/json, application/yaml"
# Accept headers repeat (each client sends the same few): parse each once.
_PARSED_HEADERS = 512


@dataclass(frozen=True, slots=True)
class Output:
    """What to send: JSON or YAML, and the object as stored or converted to ``convert``."""

    yaml: bool = False
    convert: str = ""
    version: str = "v1"

    @property
    def table(self) -> bool:
        return self.convert == TABLE

    @property
    def partial(self) -> bool:
        return self.convert in (PARTIAL, PARTIAL_LIST)

    @property
    def api_version(self) -> str:
        """The apiVersion of a converted body (``meta.k8s.io/v1``)."""
        return f"{META_GROUP}/{self.version}"


PLAIN = Output()


@dataclass(frozen=True, slots=True)
class _Range:
    type: str
    subtype: str
    params: dict[str, str]
    q: float
    position: int

    @property
    def rank(self) -> tuple[float, int, int, int]:
        # Higher q first; then a concrete type before a wildcard; then as sent.
        return (-self.q, self.type == "*", self.subtype == "*", self.position)


def _parse(header: str) -> list[_Range]:
    ranges = []
    for position, clause in enumerate(header.split(",")):
        mime, *raw_params = (part.strip() for part in clause.split(";"))
        if "/" not in mime:
            continue
        kind, _, subtype = mime.lower().partition("/")
        params: dict[str, str] = {}
        for raw in raw_params:
            key, _, value = raw.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            ranges.append(_Range(kind, subtype, params, q, position))
    return sorted(ranges, key=lambda r: r.rank)


def _servable(choice: _Range) -> Output | None:
    if choice.type not in ("application", "*") or choice.subtype not in _SUBTYPES:
        return None
    if choice.type == "*" and choice.subtype != "*":
        return None
    stream = choice.params.get("stream")
    if stream and stream != "watch":
        return None
    convert = choice.params.get("as", "")
    version = choice.params.get("v", "v1")
    known = choice.params.get("g") == META_GROUP and version in _CONVERSIONS.get(convert, ())
    if convert and not known:
        return None
    return Output(yaml=_SUBTYPES[choice.subtype], convert=convert, version=version)


@lru_cache(maxsize=_PARSED_HEADERS)
def negotiate(accept: str) -> Output:
    """The representation ``accept`` chooses; 406 when it names none the server serves."""
    if not accept.strip():
        return PLAIN
    for choice in _parse(accept):
        output = _servable(choice)
        if output is not None:
            return output
    raise errors.not_acceptable(f"only the following media types are accepted: {ACCEPTED}")
