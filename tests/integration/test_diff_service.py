"""The diff endpoints as real processes: layers from a real content service on the same node.

Apply unpacks a gzip layer that sits in the node's content store (read there by path, never
over the bus) onto a snapshot's mounts; diff writes the changes between two snapshots into
the content store; applying what diff wrote rebuilds the same tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.content.proxy import ContentProxy
from flotilla.snapshots.diff.differ import LAYER_GZIP, LAYER_TAR, UNCOMPRESSED_LABEL, Descriptor
from flotilla.snapshots.proxy import DiffProxy, SnapshotterProxy
from flotilla.snapshots.snapshotter import Snapshotter
from flotilla.snapshots.testsuite.support import mounted, read_tree, write_files
from flotilla.testkit import tarlayer as t
from flotilla.testkit.content import RandomBytes
from flotilla.testkit.services import node_services

pytestmark = pytest.mark.root

NODE = "test-node"  # the bus fixture's own node: the test is a caller on the services' node
NS = "diffs"
MIB = 1 << 20
READ = 4 * MIB


@pytest.fixture
async def services(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[Path]:
    """A content and a snapshots service on one node; their root."""
    root = tmp_path / "root"
    async with node_services(bus, nats_url, root, ("content", "snapshots")):
        yield root


@pytest.fixture(params=["overlayfs", "native"])
async def snapshotter(request: pytest.FixtureRequest, services: Path, bus: Bus) -> Snapshotter:
    return await SnapshotterProxy.open(bus, request.param, node=NODE)


@pytest.fixture
def diff(services: Path, bus: Bus) -> DiffProxy:
    return DiffProxy(bus, node=NODE, timeout=120)


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, READ):
            yield chunk


async def ingest(bus: Bus, layer: t.WrittenLayer) -> Descriptor:
    """Put a layer file into the node's content store; its descriptor."""
    store = ContentProxy(bus, node=NODE)
    async with await store.writer(NS, f"layer-{layer.digest}", layer.size, layer.digest) as writer:
        await writer.copy_from(_chunks(layer.path))
        await writer.commit(layer.size, layer.digest)
    return Descriptor(media_type=LAYER_GZIP, digest=layer.digest, size=layer.size)


async def make_layer(tmp_path: Path, name: str, entries: Sequence[t.Entry]) -> t.WrittenLayer:
    return await asyncio.to_thread(t.write_layer, entries, tmp_path / f"{name}.tar.gz")


async def tree_of(snapshotter: Snapshotter, key: str, parent: str) -> dict[str, bytes | str]:
    async with mounted(await snapshotter.view(NS, key, parent)) as root:
        return await asyncio.to_thread(read_tree, root)


async def test_apply_layers_from_the_content_store(
    snapshotter: Snapshotter, diff: DiffProxy, bus: Bus, tmp_path: Path
) -> None:
    first = await make_layer(
        tmp_path,
        "first",
        [
            t.file("etc/hostname", b"flotilla\n"),
            t.file("data/big", RandomBytes(3 * MIB + 5, "big")),
            t.symlink("etc/alias", "hostname"),
            t.hardlink("etc/nick", "etc/hostname"),
        ],
    )
    second = await make_layer(
        tmp_path, "second", [t.whiteout("data/big"), t.file("etc/hostname", b"changed\n")]
    )
    parent = ""
    for index, layer in enumerate((first, second)):
        mounts = await snapshotter.prepare(NS, f"extract-{index}", parent)
        applied = await diff.apply(NS, await ingest(bus, layer), mounts, diff_id=layer.diff_id)
        assert (applied.media_type, applied.digest) == (LAYER_TAR, layer.diff_id)
        await snapshotter.commit(NS, f"layer-{index}", f"extract-{index}")
        parent = f"layer-{index}"

    lower = await tree_of(snapshotter, "v0", "layer-0")
    assert lower["etc/hostname"] == lower["etc/nick"] == b"flotilla\n"
    assert lower["etc/alias"] == "->hostname"
    assert len(lower["data/big"]) == 3 * MIB + 5
    upper = await tree_of(snapshotter, "v1", "layer-1")
    assert "data/big" not in upper
    assert upper["etc/hostname"] == b"changed\n"
    assert upper["etc/nick"] == b"flotilla\n"  # a hard link is a file of its own once replaced


async def test_diff_then_apply_rebuilds_the_tree(
    snapshotter: Snapshotter, diff: DiffProxy, bus: Bus
) -> None:
    files: dict[str, bytes | None] = {"keep": b"1", "gone": b"2", "dir/edit": b"3", "dir/x": b"4"}
    base = await snapshotter.prepare(NS, "base-active")
    async with mounted(base) as root:
        await asyncio.to_thread(write_files, root, files)
    first = await diff.compare(NS, [], base)
    await snapshotter.commit(NS, "base", "base-active")
    work = await snapshotter.prepare(NS, "work", "base")
    async with mounted(work) as root:
        changes = {"gone": None, "dir/edit": b"changed", "new/file": b"5"}
        await asyncio.to_thread(write_files, root, changes)
    lower = await snapshotter.view(NS, "base-view", "base")
    second = await diff.compare(NS, lower, work, ref="round-trip", labels={"test": "yes"})
    assert second.media_type == LAYER_GZIP
    labels = (await ContentProxy(bus, node=NODE).info(NS, second.digest)).labels
    assert labels["test"] == "yes"

    parent = ""
    for index, layer in enumerate((first, second)):
        diff_id = (await ContentProxy(bus, node=NODE).info(NS, layer.digest)).labels[
            UNCOMPRESSED_LABEL
        ]
        mounts = await snapshotter.prepare(NS, f"replay-{index}", parent)
        assert (await diff.apply(NS, layer, mounts, diff_id=diff_id)).digest == diff_id
        await snapshotter.commit(NS, f"replayed-{index}", f"replay-{index}")
        parent = f"replayed-{index}"
    async with mounted(await snapshotter.mounts(NS, "work")) as root:
        expected = await asyncio.to_thread(read_tree, root)
    assert await tree_of(snapshotter, "replayed-view", parent) == expected
    assert expected["dir/edit"] == b"changed"
    assert "gone" not in expected


async def test_errors_cross_the_bus_with_their_class(
    snapshotter: Snapshotter, diff: DiffProxy, bus: Bus, tmp_path: Path
) -> None:
    layer = await make_layer(tmp_path, "small", [t.file("a", b"a")])
    mounts = await snapshotter.prepare(NS, "target")
    missing = Descriptor(media_type=LAYER_GZIP, digest="sha256:" + "0" * 64, size=1)
    with pytest.raises(errdefs.NotFound):
        await diff.apply(NS, missing, mounts)
    descriptor = await ingest(bus, layer)
    with pytest.raises(errdefs.FailedPrecondition):
        await diff.apply(NS, descriptor, mounts, diff_id="sha256:" + "1" * 64)
    with pytest.raises(errdefs.InvalidArgument):
        weird = Descriptor(media_type="text/plain", digest=layer.digest, size=layer.size)
        await diff.apply(NS, weird, mounts)
    with pytest.raises(errdefs.InvalidArgument):
        await diff.compare(NS, [], mounts, media_type="text/plain")
    with pytest.raises(errdefs.NotFound):  # a namespace sees only its own content
        await diff.apply("elsewhere", descriptor, mounts)
