"""``corral set image``: the patch it sends, and the mistakes it refuses before sending one."""

from __future__ import annotations

import pytest

from corralctl.context import UsageError
from corralctl.setimage import image_patch, parse_images

DEPLOYMENT = {
    "kind": "Deployment",
    "metadata": {"name": "wiki"},
    "spec": {
        "template": {
            "spec": {
                "initContainers": [{"name": "migrate", "image": "wiki:1"}],
                "containers": [
                    {"name": "wiki", "image": "wiki:1", "ports": [{"containerPort": 80}]},
                    {"name": "logs", "image": "shipper:1"},
                ],
            }
        }
    },
}


def test_only_the_named_containers_image_is_in_the_patch() -> None:
    patch = image_patch(DEPLOYMENT, parse_images(["wiki=wiki:2"]))
    assert patch == {"spec": {"template": {"spec": {"containers": [
        {"name": "wiki", "image": "wiki:2"}
    ]}}}}  # fmt: skip


def test_a_star_sets_every_container_including_init_containers() -> None:
    patch = image_patch(DEPLOYMENT, parse_images(["*=wiki:3"]))
    spec = patch["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["migrate"]
    assert {c["name"]: c["image"] for c in spec["containers"]} == {
        "wiki": "wiki:3",
        "logs": "wiki:3",
    }


def test_a_pod_is_patched_at_its_own_spec() -> None:
    pod = {"kind": "Pod", "spec": {"containers": [{"name": "main", "image": "a:1"}]}}
    assert image_patch(pod, {"main": "a:2"}) == {
        "spec": {"containers": [{"name": "main", "image": "a:2"}]}
    }


def test_an_unknown_container_is_refused() -> None:
    with pytest.raises(UsageError, match='unable to find container named "web"'):
        image_patch(DEPLOYMENT, {"web": "x:1"})


@pytest.mark.parametrize("pair", ["wiki", "=img", "wiki="])
def test_malformed_pairs_are_refused(pair: str) -> None:
    with pytest.raises(UsageError, match="CONTAINER=IMAGE"):
        parse_images([pair])


def test_an_object_without_a_template_is_refused() -> None:
    with pytest.raises(UsageError, match="no pod template"):
        image_patch({"kind": "Service", "metadata": {"name": "s"}, "spec": {}}, {"a": "b"})
