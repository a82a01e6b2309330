"""Request bodies: YAML without aliases or deep nesting, a decoded-size limit, off the loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
import yaml

from controlplane.apiserver import http, safeyaml
from corral.api.errors import ApiError

LIMIT = 3 * 1024 * 1024


def laughs(levels: int) -> bytes:
    """The billion laughs: each level ten aliases of the one before."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: lol", "  managedFields:"]
    lines.append('  - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]')
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"  - &l{level} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def test_the_loader_is_libyamls_when_pyyaml_has_it() -> None:
    assert yaml.__with_libyaml__ == safeyaml.WITH_LIBYAML
    if yaml.__with_libyaml__:
        from yaml._yaml import CParser

        assert issubclass(safeyaml.BodyLoader, CParser)
    assert issubclass(safeyaml.BodyLoader, yaml.constructor.SafeConstructor)


def test_plain_yaml_loads_as_before() -> None:
    text = "kind: ConfigMap\nmetadata: {name: a, labels: {x: 'y'}}\ndata:\n  k: |\n    2\n"
    assert safeyaml.load(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",
        "a: &x 1\n",
        "a: &m {k: v}\nb:\n  <<: *m\n",
        laughs(7).decode(),
    ],
    ids=["alias", "anchor-alone", "merge-key", "billion-laughs"],
)
def test_anchors_and_aliases_are_refused(text: str) -> None:
    with pytest.raises(safeyaml.AliasRefused, match="not allowed"):
        safeyaml.load(text)


def test_the_billion_laughs_is_a_400_saying_aliases_are_not_allowed() -> None:
    with pytest.raises(ApiError) as caught:
        http.parse_document(laughs(9), "application/yaml", LIMIT)
    assert caught.value.code == 400
    assert "aliases are not allowed" in caught.value.message


def test_unsafe_tags_stay_refused() -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        safeyaml.load("!!python/object/apply:os.system ['true']\n")


@pytest.mark.parametrize(
    "make",
    [
        lambda n: "- " * n + "x",
        lambda n: "[" * n + "]" * n,
        lambda n: "{a: " * n + "b" + "}" * n,
    ],
    ids=["block", "flow-sequence", "flow-mapping"],
)
def test_nesting_is_bounded(make: object) -> None:
    assert callable(make)
    assert safeyaml.load(make(safeyaml.MAX_DEPTH - 1)) is not None
    with pytest.raises(safeyaml.TooDeep):
        safeyaml.load(make(safeyaml.MAX_DEPTH + 1))
    # Deeper than Python's recursion limit: the old loader raised RecursionError (a 500).
    with pytest.raises(ApiError) as caught:
        http.parse_document(make(5000).encode(), "application/yaml", LIMIT)
    assert caught.value.code == 400


def test_yaml_that_decodes_past_the_limit_is_413() -> None:
    # "~" is null: two bytes of text, five of JSON.
    body = b"metadata:\n  annotations: [" + b"~," * 4000 + b"~]\n"
    assert len(body) < 10_000
    with pytest.raises(ApiError) as caught:
        http.parse_document(body, "application/yaml", 10_000)
    assert (caught.value.code, caught.value.reason) == (413, "RequestEntityTooLarge")
    assert (
        http.parse_document(body, "application/yaml", 30_000)["metadata"]["annotations"][0] is None
    )


def test_json_that_decodes_past_the_limit_is_413() -> None:
    # 1e15 is written back as 1000000000000000.0: six bytes become nineteen.
    body = b"[" + b"1e15," * 1000 + b"1e15]"
    with pytest.raises(ApiError) as caught:
        http.parse_document(body, "application/json", 2 * len(body))
    assert caught.value.code == 413


def test_what_json_cannot_hold_is_a_400_not_a_500() -> None:
    with pytest.raises(ApiError) as caught:
        http.parse_document(b"n: 123456789012345678901234567890\n", "application/yaml", LIMIT)
    assert caught.value.code == 400
    deep = b"[" * 300 + b"]" * 300
    with pytest.raises(ApiError) as caught:
        http.parse_document(deep, "application/json", LIMIT)
    assert caught.value.code == 400


def test_yaml_only_types_are_measured_not_refused() -> None:
    document = http.parse_document(b"1: one\nwhen: 2020-01-02\n", "application/yaml", LIMIT)
    assert document[1] == "one"


async def test_yaml_and_big_bodies_decode_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    real = http.parse_document

    def spy(body: bytes, content_type: str, limit: int | None = None) -> object:
        threads.append(threading.current_thread().name)
        return real(body, content_type, limit)

    monkeypatch.setattr(http, "parse_document", spy)
    loop_thread = threading.current_thread().name
    await http.decode_document(b'{"small": 1}', "application/json", LIMIT)
    await http.decode_document(b"small: 1\n", "application/yaml", LIMIT)
    big = b'{"k": "' + b"x" * (http.INLINE_DECODE_BYTES + 1) + b'"}'
    await http.decode_document(big, "application/json", LIMIT)
    assert threads[0] == loop_thread
    # A small YAML body never queues behind a big one.
    assert threads[1].startswith("decode-small") and threads[2].startswith("decode-big")


async def test_the_loop_keeps_running_while_a_big_yaml_body_decodes() -> None:
    body = ("items: [" + "{a: b}, " * 10_000 + "{a: b}]\n").encode()
    ticks = 0
    stop = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    before = ticks
    document = await http.decode_document(body, "application/yaml", LIMIT)
    stop.set()
    await ticker
    assert len(document["items"]) == 10_001
    # Inline, the decode would have held the loop: not one tick in between.
    assert ticks - before >= 1
