"""Resolve and fetch against a real registry (Debian's docker-registry)."""

from __future__ import annotations

import pytest

from flotilla.common import digests
from flotilla.common.errdefs import DataLoss, InvalidArgument, NotFound
from flotilla.images import oci
from flotilla.images.reference import parse
from flotilla.images.remotes import Registries, Repository
from flotilla.testkit._proc import run
from flotilla.testkit.faulty import FaultyRegistry
from flotilla.testkit.images import BuiltImage
from flotilla.testkit.publish import PublishedImages


def blob(image: BuiltImage, digest: str) -> bytes:
    return (image.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def repo(registries: Registries, ref: str) -> Repository:
    return registries.repository(parse(ref))


def root(image: BuiltImage) -> oci.Descriptor:
    d = image.descriptor
    return oci.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size)


async def read_all(repository: Repository, desc: oci.Descriptor, offset: int = 0) -> bytes:
    async with repository.fetch(desc, offset) as chunks:
        return b"".join([c async for c in chunks])


async def test_resolve_tag_and_digest(
    registries: Registries, published_images: PublishedImages
) -> None:
    for name in ("busybox", "multiarch"):
        image = getattr(published_images.images, name)
        r = repo(registries, published_images.ref(name))
        by_tag = await r.resolve("latest")
        assert by_tag == root(image)
        assert await r.resolve(image.digest) == by_tag
    index = await repo(registries, published_images.ref("multiarch")).resolve("latest")
    assert index.media_type == oci.OCI_INDEX


async def test_resolve_missing_names_ref_and_registry(
    registries: Registries, published_images: PublishedImages
) -> None:
    r = repo(registries, published_images.ref("busybox"))
    host = published_images.host
    with pytest.raises(NotFound, match=rf"^registry {host}: manifest busybox:nope not found"):
        await r.resolve("nope")
    with pytest.raises(NotFound, match="manifest nothing-here:latest"):
        await repo(registries, f"{host}/nothing-here").resolve("latest")
    with pytest.raises(InvalidArgument):
        await r.resolve("sha256:1234")


async def test_resolve_docker_media_types(
    registries: Registries, published_images: PublishedImages
) -> None:
    image = published_images.images.busybox
    host = published_images.host
    await run(
        "skopeo", "--insecure-policy", "copy", "--quiet", "--format", "v2s2",
        "--dest-tls-verify=false", image.oci_reference, f"docker://{host}/docker-busybox:v2",
    )  # fmt: skip
    r = repo(registries, f"{host}/docker-busybox:v2")
    desc = await r.resolve("v2")
    assert desc.media_type == oci.DOCKER_MANIFEST
    data = await r.fetch_document(desc)
    manifest = oci.decode_manifest(data, desc)
    assert manifest.config.media_type == oci.DOCKER_CONFIG
    assert all(layer.media_type == oci.DOCKER_LAYER for layer in manifest.layers)
    config = await r.fetch_document(manifest.config)
    assert digests.digest_of(config) == manifest.config.digest


async def test_fetch_documents_and_blobs_byte_for_byte(
    registries: Registries, published_images: PublishedImages
) -> None:
    image = published_images.images.multiarch
    r = repo(registries, published_images.ref("multiarch"))
    index_desc = await r.resolve("latest")
    index = oci.decode_index(await r.fetch_document(index_desc), index_desc)
    assert len(index.manifests) == 2
    for desc in index.manifests:
        data = await r.fetch_document(desc)
        assert data == blob(image, desc.digest)
        manifest = oci.decode_manifest(data, desc)
        assert await r.fetch_document(manifest.config) == blob(image, manifest.config.digest)
        for layer in manifest.layers:
            assert await read_all(r, layer) == blob(image, layer.digest)


async def test_ranged_fetch(registries: Registries, published_images: PublishedImages) -> None:
    image = published_images.images.large
    r = repo(registries, published_images.ref("large"))
    desc = await r.resolve("latest")
    manifest = oci.decode_manifest(await r.fetch_document(desc), desc)
    assert len(manifest.layers) == 8
    layer = max(manifest.layers, key=lambda d: d.size)
    whole = blob(image, layer.digest)
    assert await read_all(r, layer, 1000) == whole[1000:]
    assert await read_all(r, layer, layer.size) == b""


async def test_fetch_document_refuses_wrong_bytes(
    registries: Registries, published_images: PublishedImages
) -> None:
    r = repo(registries, published_images.ref("busybox"))
    desc = await r.resolve("latest")
    lying = oci.Descriptor(media_type=desc.media_type, digest=desc.digest, size=desc.size + 1)
    with pytest.raises(DataLoss, match=rf"{desc.size} bytes, expected {desc.size + 1}"):
        await r.fetch_document(lying)
    too_big = oci.Descriptor(media_type=desc.media_type, digest=desc.digest, size=5 << 20)
    with pytest.raises(InvalidArgument, match=f"more than {oci.MAX_DOCUMENT}"):
        await r.fetch_document(too_big)
    missing = oci.Descriptor(media_type=oci.OCI_CONFIG, digest="sha256:" + "0" * 64, size=2)
    with pytest.raises(NotFound, match=r"blob busybox@sha256:0+ not found"):
        await r.fetch_document(missing)


async def test_corrupt_document_is_data_loss(
    registries: Registries, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    r = repo(registries, f"{faulty.host}/busybox")
    desc = await r.resolve("latest")
    manifest = oci.decode_manifest(await r.fetch_document(desc), desc)
    faulty.corrupt(manifest.config.digest)
    with pytest.raises(DataLoss, match=f"blob busybox@{manifest.config.digest}: content is"):
        await r.fetch_document(manifest.config)


async def test_giant_manifest_refused(
    registries: Registries, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    faulty.giant_manifest("huge", oci.MAX_DOCUMENT + 1)
    r = repo(registries, f"{faulty.host}/busybox")
    with pytest.raises(InvalidArgument, match=f"{oci.MAX_DOCUMENT + 1} bytes, more than"):
        await r.resolve("huge")
    faulty.giant_manifest("edge", oci.MAX_DOCUMENT)
    desc = await r.resolve("edge")  # the limit itself is allowed
    assert (desc.media_type, desc.size) == (oci.OCI_MANIFEST, oci.MAX_DOCUMENT)
