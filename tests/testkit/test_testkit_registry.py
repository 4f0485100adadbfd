from __future__ import annotations

import json

import pytest

from flotilla.testkit import ImageSet, LocalRegistry, PublishedImages, local_registry, push_image
from flotilla.testkit._http import request
from flotilla.testkit.oci import MANIFEST_ACCEPT


async def test_registry_answers_v2_and_cleans_up() -> None:
    async with local_registry() as reg:
        assert reg.host.startswith("127.0.0.1:")
        assert (await request("GET", f"{reg.url}/v2/")).status == 200
        directory, process = reg.directory, reg.process
    assert process.returncode is not None
    assert not directory.exists()


async def test_push_busybox_and_multiarch_keep_their_digests(
    registry: LocalRegistry, images: ImageSet
) -> None:
    for image in (images.busybox, images.multiarch):
        ref = await push_image(image, registry.host)
        assert ref == f"{registry.host}/{image.name}:latest"
        assert await registry.manifest_digest(image.name, "latest") == image.digest


async def test_multiarch_index_is_served_with_both_platforms(
    registry: LocalRegistry, images: ImageSet
) -> None:
    await push_image(images.multiarch, registry.host, repo="lib/multi", tag="v1")
    resp = await request(
        "GET", f"{registry.url}/v2/lib/multi/manifests/v1", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert resp.headers["content-type"] == "application/vnd.oci.image.index.v1+json"
    index = json.loads(resp.body)
    for child in index["manifests"]:
        digest = await registry.manifest_digest("lib/multi", child["digest"])
        assert digest == child["digest"]


async def test_unknown_manifest_is_a_lookup_error(registry: LocalRegistry) -> None:
    with pytest.raises(LookupError):
        await registry.manifest_digest("nothing", "here")


async def test_published_images_fixture_pushes_everything(
    published_images: PublishedImages, registry: LocalRegistry
) -> None:
    for image in published_images.images:
        assert published_images.ref(image.name) == f"{registry.host}/{image.name}:latest"
        assert await registry.manifest_digest(image.name, "latest") == image.digest
