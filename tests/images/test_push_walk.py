"""What a push sends, walked from a content store on disk (no services, no bus)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common import digests, errdefs
from flotilla.content.helpers import write_blob
from flotilla.content.local import LocalStore
from flotilla.images import oci, platforms
from flotilla.images.pull.progress import BlobProgress, State, Tracker
from flotilla.images.push import Pusher, PushOptions
from flotilla.images.push.walk import SOURCE, plan_push
from flotilla.images.reference import parse
from flotilla.images.remotes.registry import Registries
from flotilla.testkit.events import RecordingPublisher
from flotilla.testkit.registry import LocalRegistry

NS = "walk"
HOST = "reg.example:5000"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    async with LocalStore(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened


async def put(
    store: LocalStore, media_type: str, data: bytes, labels: dict[str, str] | None = None
) -> oci.Descriptor:
    digest = digests.digest_of(data)
    await write_blob(store, NS, f"t-{digest}", data, digest, labels)
    return oci.Descriptor(media_type=media_type, digest=digest, size=len(data))


async def image(store: LocalStore, arch: str, *, foreign: bool = False) -> oci.Descriptor:
    """A one-layer manifest for ``arch`` (its layer labelled from ``HOST/source``)."""
    layer = await put(
        store, oci.OCI_LAYER_GZIP, arch.encode() * 50_000, {SOURCE + HOST: "source,target"}
    )
    config_doc = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}}
    config = await put(store, oci.OCI_CONFIG, repr(config_doc).encode())
    layers = [layer]
    if foreign:
        layers.append(oci.Descriptor(media_type=FOREIGN, digest=digests.digest_of(b"x"), size=1))
    manifest = oci.Manifest(
        schema_version=2, media_type=oci.OCI_MANIFEST, config=config, layers=layers
    )
    desc = await put(store, oci.OCI_MANIFEST, oci.encode(manifest), {SOURCE + HOST: "other"})
    return oci.Descriptor(
        media_type=desc.media_type,
        digest=desc.digest,
        size=desc.size,
        platform=oci.Platform(architecture=arch, os="linux"),
    )


async def index_of(store: LocalStore, *children: oci.Descriptor) -> oci.Descriptor:
    index = oci.Index(schema_version=2, media_type=oci.OCI_INDEX, manifests=list(children))
    return await put(store, oci.OCI_INDEX, oci.encode(index))


async def test_children_first_foreign_layers_left_out_and_mount_sources(
    store: LocalStore,
) -> None:
    amd, arm = await image(store, "amd64", foreign=True), await image(store, "arm64")
    inner = await index_of(store, arm)
    root = await index_of(store, amd, inner)
    plan = await plan_push(store, NS, root, None, domain=HOST, path="source")
    assert plan.root == root
    assert [doc.desc.digest for doc in plan.indexes] == [inner.digest, root.digest]
    assert list(plan.manifests) == [amd.digest, arm.digest]
    assert len(plan.blobs) == 4  # two configs, two layers; no foreign layer
    assert not any(blob.desc.media_type == FOREIGN for blob in plan.blobs.values())
    mounts = {blob.desc.media_type: blob.mount_from for blob in plan.blobs.values()}
    # A layer's own label wins (the target itself is skipped), a config inherits its manifest's.
    assert mounts == {oci.OCI_LAYER_GZIP: "target", oci.OCI_CONFIG: "other"}
    elsewhere = await plan_push(store, NS, root, None, domain="another:5000", path="source")
    assert {blob.mount_from for blob in elsewhere.blobs.values()} == {""}


async def test_one_platform_of_an_index_is_its_manifest(store: LocalStore) -> None:
    amd, arm = await image(store, "amd64"), await image(store, "arm64")
    root = await index_of(store, amd, arm)
    wanted = [platforms.only(platforms.parse("linux/arm64"))]
    plan = await plan_push(store, NS, root, wanted, domain=HOST, path="target")
    assert plan.root == arm
    assert plan.indexes == []
    assert list(plan.manifests) == [arm.digest]
    with pytest.raises(errdefs.NotFound, match="linux/s390x"):
        await plan_push(
            store, NS, root, [platforms.only(platforms.parse("linux/s390x"))], domain=HOST, path="t"
        )


async def test_a_missing_manifest_names_it_and_the_image(store: LocalStore) -> None:
    amd = await image(store, "amd64")
    absent = oci.Descriptor(
        media_type=oci.OCI_MANIFEST,
        digest=digests.digest_of(b"absent"),
        size=6,
        platform=oci.Platform(architecture="arm64", os="linux"),
    )
    root = await index_of(store, amd, absent)
    with pytest.raises(errdefs.NotFound, match=rf"image app:1: manifest {absent.digest} \(linux"):
        await plan_push(store, NS, root, None, domain=HOST, path="t", image="app:1")


async def test_a_push_from_a_store_on_disk(store: LocalStore, registry: LocalRegistry) -> None:
    """A reader without a streaming range (the store's own) is read chunk by chunk."""
    amd, arm = await image(store, "amd64"), await image(store, "arm64")
    root = await index_of(store, amd, arm)
    reports: list[BlobProgress] = []
    client = Registries()
    try:
        remote = client.repository(parse(f"{registry.host}/disk:1"), plain_http=True)
        options = PushOptions(uploads=1, chunk_size=30_000)
        tracker = Tracker(reports.append, interval=0)
        pushed = await Pusher(store).push(NS, root, remote, "1", options, tracker)
        assert pushed == root
        assert (await remote.resolve("1")).digest == root.digest
        for child in (amd, arm):
            assert await remote.blob_exists(child)
    finally:
        await client.close()
    layer = next(r.digest for r in reports if r.media_type == oci.OCI_LAYER_GZIP)
    offsets = [r.offset for r in reports if r.digest == layer and r.state is State.UPLOADING]
    assert offsets[0] == 0
    assert offsets[-1] == 50_000 * 5
    assert offsets == sorted(offsets)
    assert [r.state for r in reports if r.digest == root.digest] == [State.UPLOADING, State.DONE]
