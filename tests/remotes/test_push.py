"""Push round trips against a real registry: blobs (whole and chunked), mounts, manifests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from flotilla.common.errdefs import InvalidArgument, NotFound
from flotilla.images import oci
from flotilla.images.reference import parse
from flotilla.images.remotes import Registries, Repository
from flotilla.testkit.fixtures import AuthRegistry
from flotilla.testkit.images import BuiltImage
from flotilla.testkit.publish import PublishedImages


def blob(image: BuiltImage, digest: str) -> bytes:
    return (image.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def chunks_of(data: bytes, size: int = 7000) -> Callable[[], AsyncIterator[bytes]]:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i : i + size]

    return chunks


def root(image: BuiltImage) -> oci.Descriptor:
    d = image.descriptor
    return oci.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size)


async def copy_image(
    image: BuiltImage, target: Repository, desc: oci.Descriptor, *, chunk_size: int = 0
) -> int:
    """Push ``desc`` and everything below it from ``image``'s layout; the blobs uploaded."""
    data = blob(image, desc.digest)
    uploaded = 0
    if oci.is_index(desc.media_type):
        for child in oci.decode_index(data, desc).manifests:
            uploaded += await copy_image(image, target, child, chunk_size=chunk_size)
    else:
        manifest = oci.decode_manifest(data, desc)
        for b in (manifest.config, *manifest.layers):
            if await target.blob_exists(b):
                continue
            await target.push_blob(b, chunks_of(blob(image, b.digest)), chunk_size=chunk_size)
            uploaded += 1
    await target.push_manifest(desc, data)
    return uploaded


async def pull_back(image: BuiltImage, source: Repository, reference: str) -> None:
    desc = await source.resolve(reference)
    data = await source.fetch_document(desc)
    assert data == blob(image, desc.digest)
    manifest = oci.decode_manifest(data, desc)
    for b in (manifest.config, *manifest.layers):
        async with source.fetch(b) as chunks:
            assert b"".join([c async for c in chunks]) == blob(image, b.digest)


async def test_push_round_trip_and_head_skip(
    registries: Registries, published_images: PublishedImages
) -> None:
    image = published_images.images.busybox
    target = registries.repository(parse(f"{published_images.host}/copies/busybox"))
    desc = root(image)
    manifest = oci.decode_manifest(blob(image, desc.digest), desc)
    assert not await target.blob_exists(manifest.config)
    assert await copy_image(image, target, desc) == 1 + len(manifest.layers)
    await target.push_manifest(desc, blob(image, desc.digest), tag="v1")
    await pull_back(image, target, "v1")
    assert await target.resolve("v1") == desc
    assert await copy_image(image, target, desc) == 0  # every blob is there: HEAD skips them


async def test_chunked_push_of_an_index(
    registries: Registries, published_images: PublishedImages
) -> None:
    image = published_images.images.multiarch
    target = registries.repository(parse(f"{published_images.host}/chunked"))
    desc = root(image)
    assert await copy_image(image, target, desc, chunk_size=5000) > 0
    await target.push_manifest(desc, blob(image, desc.digest), tag="all")
    assert await target.resolve("all") == desc
    for child in oci.decode_index(blob(image, desc.digest), desc).manifests:
        await pull_back(image, target, child.digest)


async def test_cross_repository_mount(
    registries: Registries, published_images: PublishedImages
) -> None:
    image = published_images.images.busybox
    target = registries.repository(parse(f"{published_images.host}/mounted"))
    manifest = oci.decode_manifest(blob(image, image.digest), root(image))
    layer = manifest.layers[0]
    assert await target.mount_blob(layer, "busybox")
    assert await target.blob_exists(layer)
    absent = oci.Descriptor(media_type=oci.OCI_LAYER_GZIP, digest="sha256:" + "1" * 64, size=3)
    assert not await target.mount_blob(absent, "busybox")
    assert not await target.blob_exists(absent)


async def test_push_refusals(registries: Registries, published_images: PublishedImages) -> None:
    image = published_images.images.busybox
    target = registries.repository(parse(f"{published_images.host}/refused"))
    desc = root(image)
    data = blob(image, desc.digest)
    with pytest.raises(InvalidArgument, match="descriptor says"):
        await target.push_manifest(desc, data + b" ")
    manifest = oci.decode_manifest(data, desc)
    config = manifest.config
    wrong = oci.Descriptor(media_type=config.media_type, digest=config.digest, size=config.size)
    with pytest.raises(InvalidArgument, match=f"bytes, descriptor says {config.size}"):
        await target.push_blob(wrong, chunks_of(blob(image, config.digest)[:-1]))
    with pytest.raises(InvalidArgument, match="answered 400"):  # its blobs are not there
        await target.push_manifest(desc, data)
    with pytest.raises(NotFound):
        await target.resolve("latest")


async def test_push_with_token_auth(token_registry: AuthRegistry) -> None:
    ts = token_registry.token_server
    assert ts is not None
    image = token_registry.published.images.busybox
    client = Registries(credentials={token_registry.host: token_registry.credentials})
    try:
        target = client.repository(parse(f"{token_registry.host}/pushed"))
        manifest = oci.decode_manifest(blob(image, image.digest), root(image))
        assert await target.mount_blob(manifest.layers[0], "busybox")
        await copy_image(image, target, root(image))
        await pull_back(image, target, image.digest)
    finally:
        await client.close()
    # One token per scope set, each fetched once: the mount's, the push's, the pull's.
    assert [sorted(r.scopes) for r in ts.requests] == [
        ["repository:busybox:pull", "repository:pushed:pull,push"],
        ["repository:pushed:pull,push"],
        ["repository:pushed:pull"],
    ]
    assert all(r.status == 200 and r.user for r in ts.requests)
