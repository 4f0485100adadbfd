"""Pulls from a real registry into real content and snapshots services, unpacked as they arrive."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from tests.images.conftest import NODE, NS, ImagesKit

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.content.helpers import read_blob
from flotilla.content.proxy import ContentProxy
from flotilla.images.pull.progress import State
from flotilla.images.pull.puller import UNPACKED_LABEL
from flotilla.metadata import Metadata
from flotilla.snapshots.proxy import SnapshotterProxy
from flotilla.snapshots.snapshotter import Kind
from flotilla.snapshots.testsuite.support import mounted
from flotilla.testkit.layout import read_json
from flotilla.testkit.oci import Descriptor as KitDescriptor
from flotilla.testkit.publish import PublishedImages

pytestmark = pytest.mark.root


def manifest_of(published: PublishedImages, name: str) -> dict[str, object]:
    image = getattr(published.images, name)
    found: dict[str, object] = read_json(image.layout, image.descriptor)
    return found


async def test_busybox_is_pulled_unpacked_and_recorded(
    pulls: ImagesKit, published_images: PublishedImages, metadata: Metadata, bus: Bus
) -> None:
    ref = published_images.ref("busybox")
    pulled = await pulls.pull(ref)

    image = await metadata.images.get(NS, ref)
    assert image.target.digest == published_images.images.busybox.digest
    assert image.labels[UNPACKED_LABEL + NODE] == "overlayfs"
    assert pulled.created
    assert len(pulled.chain_ids) == 1

    content = ContentProxy(bus, node=NODE)
    manifest = manifest_of(published_images, "busybox")
    config = KitDescriptor.from_json(manifest["config"])  # type: ignore[arg-type]
    layer = KitDescriptor.from_json(manifest["layers"][0])  # type: ignore[index]
    labels = (await content.info(NS, image.target.digest)).labels
    assert labels["containerd.io/gc.ref.content.config"] == config.digest
    assert labels["containerd.io/gc.ref.content.l.0"] == layer.digest
    config_labels = (await content.info(NS, config.digest)).labels
    assert config_labels["containerd.io/gc.ref.snapshot.overlayfs"] == pulled.chain_ids[0]
    layer_labels = (await content.info(NS, layer.digest)).labels
    assert layer_labels["containerd.io/uncompressed"] == pulled.chain_ids[0]  # one layer

    snapshotter = await SnapshotterProxy.open(bus, "overlayfs", node=NODE)
    assert (await snapshotter.stat(NS, pulled.chain_ids[0])).kind is Kind.COMMITTED
    mounts = await snapshotter.view(NS, "look", pulled.chain_ids[0])
    async with mounted(mounts) as root:
        assert os.access(root / "bin" / "busybox", os.X_OK)
    await snapshotter.remove(NS, "look")

    assert [lease async for lease in metadata.leases.list(NS)] == []
    done = {p.digest for p in pulls.progress if p.state is State.DONE}
    assert {layer.digest, config.digest, image.target.digest} <= done


async def test_a_platform_of_an_index_and_all_of_them(
    pulls: ImagesKit, published_images: PublishedImages, bus: Bus
) -> None:
    ref = published_images.ref("multiarch")
    index = manifest_of(published_images, "multiarch")
    entries = [KitDescriptor.from_json(m) for m in index["manifests"]]  # type: ignore[attr-defined]
    by_arch = {e.platform.architecture: e for e in entries if e.platform}  # type: ignore[union-attr]
    content = ContentProxy(bus, node=NODE)

    await pulls.pull(ref, platforms=("linux/arm64",), unpack=False)
    await content.info(NS, by_arch["arm64"].digest)
    with pytest.raises(errdefs.NotFound):
        await content.info(NS, by_arch["amd64"].digest)
    labels = (await content.info(NS, published_images.images.multiarch.digest)).labels
    assert labels == {
        "containerd.io/gc.ref.content.m.0": by_arch["arm64"].digest,
        f"containerd.io/distribution.source.{published_images.host}": "multiarch",
    }

    await pulls.pull(ref, all_platforms=True, namespace="all", unpack=False)
    for entry in entries:
        await content.info("all", entry.digest)


async def test_the_large_image_and_a_second_pull_that_fetches_nothing(
    pulls: ImagesKit, published_images: PublishedImages, bus: Bus
) -> None:
    ref = published_images.ref("large")
    first = await pulls.pull(ref)
    manifest = manifest_of(published_images, "large")
    assert len(manifest["layers"]) == 8  # type: ignore[arg-type]
    snapshotter = await SnapshotterProxy.open(bus, "overlayfs", node=NODE)
    mounts = await snapshotter.view(NS, "look", first.chain_ids[0])
    async with mounted(mounts) as root:
        assert not (root / "data" / "doomed.txt").exists()
        assert os.access(root / "usr" / "local" / "bin" / "hello", os.X_OK)
    pulls.progress.clear()
    second = await pulls.pull(ref)
    assert not second.created
    assert second.chain_ids == first.chain_ids
    assert {p.state for p in pulls.progress} <= {State.EXISTS, State.DONE, State.WAITING}


async def test_the_native_snapshotter(pulls: ImagesKit, published_images: PublishedImages) -> None:
    pulled = await pulls.pull(published_images.ref("large"), snapshotter="native")
    assert len(pulled.chain_ids) == 1


async def test_concurrent_identical_pulls_both_succeed(
    pulls: ImagesKit, published_images: PublishedImages
) -> None:
    ref = published_images.ref("large")
    results = await asyncio.gather(pulls.pull(ref), pulls.pull(ref))
    assert results[0].chain_ids == results[1].chain_ids
    assert sorted(r.created for r in results) == [False, True]


async def test_an_unknown_tag_is_not_found(
    pulls: ImagesKit, published_images: PublishedImages, metadata: Metadata
) -> None:
    ref = published_images.ref("busybox").replace(":latest", ":nope")
    with pytest.raises(errdefs.NotFound, match="nope"):
        await pulls.pull(ref)
    with pytest.raises(errdefs.NotFound):
        await metadata.images.get(NS, ref)


async def test_a_missing_platform_is_not_found(
    pulls: ImagesKit, published_images: PublishedImages
) -> None:
    with pytest.raises(errdefs.NotFound, match="linux/s390x"):
        await pulls.pull(published_images.ref("multiarch"), platforms=("linux/s390x",))


async def test_every_platform_is_fetched_and_only_this_nodes_unpacked(
    pulls: ImagesKit, published_images: PublishedImages, bus: Bus
) -> None:
    ref = published_images.ref("multiarch")
    index = manifest_of(published_images, "multiarch")
    entries = [KitDescriptor.from_json(m) for m in index["manifests"]]  # type: ignore[attr-defined]
    pulled = await pulls.pull(ref, all_platforms=True)
    assert len(pulled.chain_ids) == 1  # the node's own platform's manifest alone
    content = ContentProxy(bus, node=NODE)
    snapshot_labels = []
    for entry in entries:
        manifest = json.loads(await read_blob(content, NS, entry.digest))
        config = (await content.info(NS, manifest["config"]["digest"])).labels
        snapshot_labels.append("containerd.io/gc.ref.snapshot.overlayfs" in config)
    assert sorted(snapshot_labels) == [False, True]
