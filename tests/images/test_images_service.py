"""The images service as a real process: pull with progress, import and export tarballs.

Every call goes over NATS to ``flotilla.v1.node.<node>.images.*``, as the gateway and the
command line make them.
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from tests.archive import kit
from tests.images.conftest import NODE, NS

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.common.subjects import EVENTS_PREFIX
from flotilla.content.proxy import ContentProxy
from flotilla.images import api
from flotilla.images.gc.client import CollectorClient
from flotilla.images.proxy import ImagesProxy
from flotilla.images.pull.progress import BlobProgress, State
from flotilla.metadata import Image, Metadata
from flotilla.snapshots.proxy import SnapshotterProxy
from flotilla.snapshots.snapshotter import Kind
from flotilla.testkit import ImageSet, export_oci_tar
from flotilla.testkit.publish import PublishedImages
from flotilla.testkit.services import node_services

pytestmark = pytest.mark.root


@pytest.fixture
async def images_service(node_root: Path, nats_url: str, bus: Bus) -> AsyncIterator[ImagesProxy]:
    async with node_services(bus, nats_url, node_root, ("images",)):
        yield ImagesProxy(bus, timeout=300)


async def test_pull_with_progress_and_events(
    images_service: ImagesProxy, published_images: PublishedImages, metadata: Metadata, bus: Bus
) -> None:
    seen: list[BlobProgress] = []
    topics: list[str] = []

    async def on_event(msg: Msg) -> None:
        topics.append(msg.subject)

    subscription = await bus.nc.subscribe(f"{EVENTS_PREFIX}.images.>", cb=on_event)
    ref = published_images.ref("large")
    request = api.PullRequest(reference=ref, plain_http=True)
    result = await images_service.pull(NS, request, progress=seen.append)
    again = await images_service.pull(NS, request)
    await bus.flush()
    await subscription.unsubscribe()
    assert not again.created
    assert topics == [f"{EVENTS_PREFIX}.images.create", f"{EVENTS_PREFIX}.images.update"]
    assert result.name == ref
    assert result.target.digest == published_images.images.large.digest
    assert len(result.chain_ids) == 1
    assert (await metadata.images.get(NS, ref)).target.digest == result.target.digest
    states = {(p.digest, p.state) for p in seen}
    layers = {p.digest for p in seen if p.state is State.EXTRACTING}
    assert len(layers) == 8
    assert all((digest, State.DONE) in states for digest in layers)


async def test_a_pull_error_crosses_the_bus(
    images_service: ImagesProxy, published_images: PublishedImages
) -> None:
    ref = published_images.ref("busybox").replace("busybox", "nothing-here")
    with pytest.raises(errdefs.NotFound, match="nothing-here"):
        await images_service.pull(NS, api.PullRequest(reference=ref, plain_http=True))


async def test_import_then_export_round_trip(
    images_service: ImagesProxy, images: ImageSet, metadata: Metadata, tmp_path: Path
) -> None:
    tarball = await export_oci_tar(
        images.busybox, tmp_path / "in.tar", image_name="example.com/b:1"
    )
    result = await images_service.import_archive(NS, api.ImportRequest(path=str(tarball)))
    (imported,) = result.images
    assert imported.name == "example.com/b:1"
    assert imported.target.digest == images.busybox.digest
    assert len(imported.chain_ids) == 1
    await metadata.images.get(NS, "example.com/b:1")

    out = tmp_path / "out.tar"
    exported = await images_service.export_archive(
        NS, api.ExportRequest(path=str(out), names=("example.com/b:1",))
    )
    assert exported.size == out.stat().st_size
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)

    again = await images_service.import_archive("again", api.ImportRequest(path=str(out)))
    assert [i.target.digest for i in again.images] == [images.busybox.digest]


async def test_a_bad_tarball_leaves_nothing(
    images_service: ImagesProxy, metadata: Metadata, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escape")
        tar.addfile(info)
    with pytest.raises(errdefs.InvalidArgument, match="escape"):
        await images_service.import_archive(NS, api.ImportRequest(path=str(bad)))
    assert [image async for image in metadata.images.list(NS)] == []
    assert [lease async for lease in metadata.leases.list(NS)] == []


async def test_push_then_pull_back(
    images_service: ImagesProxy, published_images: PublishedImages, metadata: Metadata
) -> None:
    source = published_images.ref("busybox")
    await images_service.pull(NS, api.PullRequest(reference=source, plain_http=True))
    copy = f"{published_images.host}/copies/busybox:v1"
    seen: list[BlobProgress] = []
    pushed = await images_service.push(
        NS,
        api.PushRequest(name=source, reference=copy, plain_http=True),
        progress=seen.append,
    )
    assert pushed.reference == copy
    assert pushed.target.digest == published_images.images.busybox.digest
    assert {p.state for p in seen} & {State.UPLOADING, State.EXISTS, State.DONE}
    back = await images_service.pull("back", api.PullRequest(reference=copy, plain_http=True))
    assert back.target.digest == pushed.target.digest
    with pytest.raises(errdefs.NotFound, match="nope"):
        await images_service.push(NS, api.PushRequest(name="nope", plain_http=True))


async def test_tag_remove_and_collect(
    images_service: ImagesProxy,
    published_images: PublishedImages,
    metadata: Metadata,
    bus: Bus,
) -> None:
    """A pulled image's labels let the collector keep all of it, and take all of it once unnamed."""
    ref = published_images.ref("large")
    pulled = await images_service.pull(NS, api.PullRequest(reference=ref, plain_http=True))
    record = await metadata.images.get(NS, ref)
    await metadata.images.create(NS, Image(name="example.com/tagged:1", target=record.target))
    await metadata.images.delete(NS, ref)

    collector = CollectorClient(bus)
    await collector.collection()
    content = ContentProxy(bus, node=NODE)
    snapshotter = await SnapshotterProxy.open(bus, "overlayfs", node=NODE)
    blobs = [info.digest async for info in content.walk(NS)]
    assert len(blobs) == 1 + 1 + 8  # manifest, config, layers
    assert (await snapshotter.stat(NS, pulled.chain_ids[0])).kind is Kind.COMMITTED

    await metadata.images.delete(NS, "example.com/tagged:1")
    await collector.collection()
    assert [info async for info in content.walk(NS)] == []
    assert [info async for info in snapshotter.walk(NS)] == []


async def test_a_layer_not_matching_its_diff_id_is_refused_on_import(
    images_service: ImagesProxy, metadata: Metadata, tmp_path: Path
) -> None:
    image = kit.Tiny()
    layer = kit.layer_tar({"hello.txt": b"hello\n"})
    config = kit.canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [kit.digest(b"something else")]},
        }
    )
    image.add(config)
    image.add(layer)
    manifest = kit.canonical(
        {
            "schemaVersion": 2,
            "mediaType": kit.MANIFEST,
            "config": kit.desc(kit.CONFIG, config),
            "layers": [kit.desc(kit.LAYER_GZIP, layer)],
        }
    )
    image.add(manifest)
    image.target = kit.desc(kit.MANIFEST, manifest)
    entries = kit.layout_entries((image, kit.named(image.target, "example.com/bad:1")))
    tarball = kit.write_tar(tmp_path / "bad.tar", entries)
    with pytest.raises(errdefs.ErrdefsError, match="diffID"):
        await images_service.import_archive(NS, api.ImportRequest(path=str(tarball)))
    assert [image async for image in metadata.images.list(NS)] == []
    assert [lease async for lease in metadata.leases.list(NS)] == []
