"""Request bodies in, JSON/YAML/Status out: the wire details every handler shares."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response

from controlplane.apiserver import safeyaml
from controlplane.apiserver.negotiation import Output, negotiate
from corral.api import errors, protobuf
from corral.api.errors import ApiError

JSON = "application/json"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
# JSON this small decodes in well under a millisecond: a thread hop costs more.
INLINE_DECODE_BYTES = 64 * 1024
# Few threads, so big bodies wait their turn instead of taking the interpreter
# from the event loop many at once (the in-flight limit bounds the queues);
# small YAML bodies have threads of their own and never wait behind big ones.
_small_decoders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode-small")
_big_decoders = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode-big")
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def json_response(
    body: Any, status: int = 200, warnings: list[str] | None = None, *, yaml_out: bool = False
) -> Response:
    headers = warning_headers(warnings)
    if yaml_out:
        text = yaml.safe_dump(
            body if not isinstance(body, bytes) else orjson.loads(body), sort_keys=False
        )
        return Response(text, status, headers=headers, media_type="application/yaml")
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    if isinstance(body, dict) and body.get("kind") == "Status":
        content += b"\n"  # kube-apiserver ends a Status body with a newline
    return Response(content, status, headers=headers, media_type=JSON)


def status_response(error: ApiError) -> Response:
    headers = {}
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    # The newline ends the body as kube-apiserver's encoder ends it.
    body = orjson.dumps(error.to_status()) + b"\n"
    return Response(body, error.code, headers=headers, media_type=JSON)


def success_status(details: dict[str, Any] | None = None, code: int = 200) -> dict[str, Any]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
    }
    if details:
        status["details"] = details
    status["code"] = code  # after details, in kube-apiserver's order
    return status


def warning_headers(warnings: list[str] | None) -> dict[str, str] | None:
    if not warnings:
        return None
    # RFC 7234 warn-code 299 is what client-go surfaces; Starlette joins
    # repeated keys poorly, so several warnings share one comma-separated header.
    parts = []
    for warning in warnings:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'299 - "{escaped}"')
    return {"Warning": ", ".join(parts)}


def media_type(request: Request) -> str:
    raw = request.headers.get("content-type", "")
    return raw.split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise errors.too_large(limit)
        except ValueError:
            raise errors.bad_request("invalid Content-Length header") from None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_document(body: bytes, content_type: str, limit: int | None = None) -> Any:
    """Decode a JSON, YAML or Kubernetes protobuf request body; anything else is 415.

    ``limit`` bounds the decoded document as it bounds the raw body: it is
    measured as JSON (what is stored) before any model sees it, so a body
    cannot grow past the limit by decoding. Handlers call decode_document,
    which also keeps big bodies off the event loop.
    """
    if not body.strip():
        raise errors.bad_request("the request body is empty")
    if content_type in ("", JSON, "*/*") or content_type.endswith("+json"):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise errors.bad_request(f"the request body is not valid JSON: {error}") from None
    elif content_type in YAML_TYPES:
        try:
            document = safeyaml.load(body)
        except yaml.YAMLError as error:
            raise errors.bad_request(f"the request body is not valid YAML: {error}") from None
    elif content_type == protobuf.MEDIA_TYPE:
        document = _protobuf_document(body)
    else:
        raise errors.unsupported_media_type(content_type)
    if limit is not None:
        check_decoded_size(document, limit)
    return document


def _protobuf_document(body: bytes) -> Any:
    """What client-go's typed clients send (kubectl create configmap|token|...)."""
    try:
        return protobuf.decode(body)
    except protobuf.NotServedAsProtobuf as error:
        raise errors.ApiError(415, "UnsupportedMediaType", str(error)) from None
    except protobuf.ProtobufError as error:
        raise errors.bad_request(
            f"the request body is not a valid protobuf object: {error}"
        ) from None


def check_decoded_size(document: Any, limit: int) -> None:
    """413 when the document, written as JSON, is over ``limit`` bytes; 400 if it cannot be."""
    try:
        # YAML may decode to what JSON has no word for (integer keys, dates,
        # !!binary): those are measured as text, and judged by the decoders after.
        encoded = orjson.dumps(document, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as error:
        # orjson nests 254 deep and holds 64-bit integers; storage writes with it.
        raise errors.bad_request(f"the request body cannot be held as JSON: {error}") from None
    if len(encoded) > limit:
        raise errors.too_large(limit)


async def decode_document(body: bytes, content_type: str, limit: int) -> Any:
    """parse_document, off the event loop when decoding may take a while.

    Decoding is pure CPU: megabytes of YAML take seconds. In the few worker
    threads the loop keeps its turn at the interpreter and goes on serving
    everyone else (health checks, watches) meanwhile.
    """
    small = len(body) <= INLINE_DECODE_BYTES
    # The first protobuf body loads Kubernetes' generated schemas (~0.4 s): never on the loop.
    if small and content_type not in YAML_TYPES and content_type != protobuf.MEDIA_TYPE:
        return parse_document(body, content_type, limit)
    decoders = _small_decoders if small else _big_decoders
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(decoders, parse_document, body, content_type, limit)


def negotiated(request: Request) -> Output:
    """The representation the request's Accept header chooses (negotiation.py); 406 if none."""
    return negotiate(request.headers.get("accept", ""))


def wants_yaml(request: Request) -> bool:
    return negotiated(request).yaml


def wants_table(request: Request) -> bool:
    return negotiated(request).table
