"""LIST with selectors, pagination and resourceVersion semantics."""

from __future__ import annotations

import pytest

from corral.api.errors import ApiError
from corral.client.rest import Client
from tests.integration.test_crud import PODS, pod


async def _seed(client: Client, namespace: str) -> None:
    for i in range(6):
        body = pod(f"p{i}", app="web" if i < 4 else "db", tier=str(i % 2))
        await client.create(PODS, body, namespace)


async def _names(client: Client, namespace: str, **kwargs: object) -> list[str]:
    listed = await client.list(PODS, namespace, **kwargs)  # type: ignore[arg-type]
    return [p["metadata"]["name"] for p in listed["items"]]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["p0", "p1", "p2", "p3"]),
        ("app!=web", ["p4", "p5"]),
        ("app in (db,cache)", ["p4", "p5"]),
        ("app notin (web)", ["p4", "p5"]),
        ("tier", ["p0", "p1", "p2", "p3", "p4", "p5"]),
        ("!tier", []),
        ("app=web,tier=1", ["p1", "p3"]),
    ],
)
async def test_label_selectors(
    client: Client, namespace: str, selector: str, expected: list[str]
) -> None:
    await _seed(client, namespace)
    assert await _names(client, namespace, label_selector=selector) == expected


async def test_field_selectors(client: Client, namespace: str) -> None:
    await _seed(client, namespace)
    assert await _names(client, namespace, field_selector="metadata.name=p2") == ["p2"]
    assert await _names(client, namespace, field_selector="metadata.name!=p2") == [
        "p0",
        "p1",
        "p3",
        "p4",
        "p5",
    ]
    assert len(await _names(client, namespace, field_selector="status.phase=Pending")) == 6
    assert await _names(client, namespace, field_selector="spec.nodeName=node-x") == []


async def test_unknown_field_selector_is_bad_request(client: Client, namespace: str) -> None:
    with pytest.raises(ApiError) as caught:
        await client.list(PODS, namespace, field_selector="spec.bogus=1")
    assert caught.value.code == 400
    assert "spec.bogus" in caught.value.message


async def test_bad_label_selector_is_bad_request(client: Client, namespace: str) -> None:
    with pytest.raises(ApiError) as caught:
        await client.list(PODS, namespace, label_selector="a in (b")
    assert caught.value.code == 400
    assert any(c.field == "labelSelector" for c in caught.value.causes)


async def test_pagination_is_a_consistent_snapshot(client: Client, namespace: str) -> None:
    await _seed(client, namespace)
    first = await client.list(PODS, namespace, limit=4)
    assert [p["metadata"]["name"] for p in first["items"]] == ["p0", "p1", "p2", "p3"]
    token = first["metadata"]["continue"]
    assert first["metadata"]["remainingItemCount"] == 2
    # A pod created after the first page must not appear on the second.
    await client.create(PODS, pod("p9"), namespace)
    second = await client.list(PODS, namespace, limit=4, continue_=token)
    assert [p["metadata"]["name"] for p in second["items"]] == ["p4", "p5"]
    assert "continue" not in second["metadata"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


async def test_pagination_with_selector_fills_pages(client: Client, namespace: str) -> None:
    await _seed(client, namespace)
    page = await client.list(PODS, namespace, limit=2, label_selector="app=db")
    assert [p["metadata"]["name"] for p in page["items"]] == ["p4", "p5"]


async def test_list_across_namespaces(client: Client, namespace: str) -> None:
    await _seed(client, namespace)
    everything = await client.list(PODS, all_namespaces=True, label_selector="app=db")
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in everything["items"]}
    assert {(namespace, "p4"), (namespace, "p5")} <= names


async def test_list_is_consistent_right_after_a_write(client: Client, namespace: str) -> None:
    for i in range(20):
        await client.create(PODS, pod(f"q{i}"), namespace)
        names = await _names(client, namespace)
        assert f"q{i}" in names


async def test_exact_resource_version_reads_the_past(client: Client, namespace: str) -> None:
    await client.create(PODS, pod("p0"), namespace)
    before = await client.list(PODS, namespace)
    await client.create(PODS, pod("p1"), namespace)
    past = await client.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        params={
            "resourceVersion": before["metadata"]["resourceVersion"],
            "resourceVersionMatch": "Exact",
        },
    )
    assert [p["metadata"]["name"] for p in past["items"]] == ["p0"]


async def test_table_output(client: Client, namespace: str) -> None:
    await _seed(client, namespace)
    table = await client.table(PODS, namespace, label_selector="app=db")
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert [r["cells"][0] for r in table["rows"]] == ["p4", "p5"]
    assert table["rows"][0]["cells"][2] == "Pending"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table["metadata"]["resourceVersion"]
