"""Unpack: an image's layers from the content store into overlayfs snapshots, vs containerd.

Each side unpacks the same 8-layer ``large`` image (200 MiB, 16 MiB with ``--quick``) from its
own content store into overlayfs snapshots named by chain ID:

- containerd: ``ctr snapshots unpack <manifest>``, the image imported with ``--no-unpack``
  first. It runs ``image.Unpack``, what a pull or an import does once the blobs are in: each
  layer prepared, applied by the daemon's differ, committed, one after another.
- Flotilla in process: ``rootfs.apply_layers`` with the ``LayerApplier``, on a ``LocalStore``
  and an overlay ``LocalSnapshotter`` (events staged in memory, no relay).
- Flotilla over NATS: ``apply_layers`` here, with ``SnapshotterProxy`` and ``DiffProxy`` to
  the snapshots service of the benchmark's node (its layers read from the content service's
  disk), as ``ctr`` drives containerd over gRPC.

Every run is cold and starts from nothing: each side unpacks into a namespace of its own that
holds the image's blobs and no snapshot (imported or ingested before the clock starts), then
dirty pages are written back and the page cache is dropped, so each side reads its blobs from
disk and writes every file anew. ``ctr`` itself is read back in before the clock starts (its
cold start is not the unpack). Nothing is deleted between runs: on ext4 without a journal
(this machine's root) every new file scans the inodes freed in the last 30 seconds, so each
run would pay for the cleanup of the one before.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from bench.harness import FULL_LARGE_SIZE, QUICK_LARGE_SIZE, BenchContext, Result, abab

from flotilla.content.local import LocalStore
from flotilla.content.proxy import ContentProxy
from flotilla.content.store import Ingester
from flotilla.snapshots.diff.apply import LayerApplier
from flotilla.snapshots.diff.differ import Applier, Descriptor
from flotilla.snapshots.local import LocalSnapshotter, NodeSnapshots
from flotilla.snapshots.overlay import OverlayLayout
from flotilla.snapshots.proxy import DiffProxy, SnapshotterProxy
from flotilla.snapshots.rootfs import Layer, apply_layers, chain_ids
from flotilla.snapshots.snapshotter import Snapshotter
from flotilla.testkit import BuiltImage, Containerd, build_large, export_oci_tar
from flotilla.testkit.events import RecordingPublisher
from flotilla.testkit.layout import blob_path, read_json
from flotilla.testkit.oci import Descriptor as OciDescriptor

MB = 1_000_000
MIB = 1 << 20
IMAGE_NAME = "flotilla/large:unpack"
SNAPSHOTTER = "overlayfs"
_COPY = 4 * MIB
_namespaces = (f"bench-unpack-{n}" for n in itertools.count())


def image_layers(image: BuiltImage) -> list[Layer]:
    """The image's layers, bottom first, with the diffIDs of its config."""
    manifest = read_json(image.layout, image.descriptor)
    config = read_json(image.layout, OciDescriptor.from_json(manifest["config"]))
    return [
        Layer(Descriptor(media_type=b["mediaType"], digest=b["digest"], size=b["size"]), diff_id)
        for b, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True)
    ]


def unpacked_size(image: BuiltImage, layers: list[Layer]) -> int:
    """The bytes of the layers' uncompressed tars (blocking)."""
    total = 0
    for layer in layers:
        with gzip.open(blob_path(image.layout, layer.blob.digest)) as tar:
            while chunk := tar.read(_COPY):
                total += len(chunk)
    return total


def drop_caches() -> None:
    """Write dirty pages back, then drop the page cache, dentries and inodes (blocking)."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


class Side(Protocol):
    """One unpacker under test."""

    async def ready(self) -> None:
        """A namespace holding the image's blobs and no snapshot (a new one once used)."""
        ...

    async def prime(self) -> None:
        """Bring the unpacker's own program (not the image) back after the cache drop."""
        ...

    async def unpack(self) -> None:
        """Unpack the image in that namespace."""
        ...


class ContainerdSide:
    """containerd: the image imported (not unpacked) into a new namespace for each run."""

    def __init__(self, ctd: Containerd, image: BuiltImage, tarball: Path) -> None:
        self.ctd, self.image, self.tarball = ctd, image, tarball
        self.namespace, self.used = "", True

    async def ready(self) -> None:
        """Import the image into a new namespace, unless the current one is unused."""
        if self.used:
            self.namespace, self.used = next(_namespaces), False
            await self.ctd.ctr(
                "images", "import", "--no-unpack", str(self.tarball), namespace=self.namespace
            )

    async def prime(self) -> None:
        """Read the ``ctr`` binary back in (a cold start of it costs some 50 ms here)."""
        await self.ctd.ctr("version")

    async def unpack(self) -> None:
        """``ctr snapshots unpack``: the image's layers into overlayfs snapshots."""
        self.used = True
        args = ("snapshots", "--snapshotter", SNAPSHOTTER, "unpack", self.image.digest)
        await self.ctd.ctr(*args, namespace=self.namespace)


class FlotillaSide:
    """Flotilla's ports: the image's blobs ingested into a new namespace for each run."""

    def __init__(
        self,
        image: BuiltImage,
        layers: list[Layer],
        content: Ingester,
        snapshotter: Snapshotter,
        applier: Applier,
    ) -> None:
        self.image, self.layers, self.content = image, layers, content
        self.snapshotter, self.applier = snapshotter, applier
        self.top = chain_ids([layer.diff_id for layer in layers])[-1]
        self.namespace, self.used = "", True

    async def ready(self) -> None:
        """Ingest the blobs into a new namespace, unless the current one is unused."""
        if self.used:
            self.namespace, self.used = next(_namespaces), False
            for layer in self.layers:
                path = blob_path(self.image.layout, layer.blob.digest)
                await ingest(self.content, self.namespace, path, layer.blob)

    async def prime(self) -> None:
        """Nothing: the code runs in processes that keep it in memory."""

    async def unpack(self) -> None:
        """``apply_layers``: the image's layers into overlayfs snapshots."""
        self.used = True
        top = await apply_layers(self.snapshotter, self.applier, self.namespace, self.layers)
        if top != self.top:
            raise RuntimeError(f"flotilla: apply_layers answered {top}, not {self.top}")


async def ingest(content: Ingester, namespace: str, path: Path, blob: Descriptor) -> None:
    """Copy the file at ``path`` into ``content`` as the blob ``blob``."""
    writer = await content.writer(namespace, f"unpack-{blob.digest}", blob.size, blob.digest)
    async with writer:
        with path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, _COPY):
                await writer.write(chunk)
        await writer.commit(blob.size, blob.digest)


async def in_process(ctx: BenchContext, image: BuiltImage, layers: list[Layer]) -> FlotillaSide:
    """Flotilla's store, snapshotter and applier in this process, under ``ctx.workdir``."""
    publisher, root = RecordingPublisher(), ctx.workdir / "unpack-flotilla"
    store = await ctx.stack.enter_async_context(await LocalStore.open(root / "content", publisher))
    node = NodeSnapshots(root / "snapshots" / "metadata.db", publisher)
    await node.open()
    ctx.stack.push_async_callback(node.close)
    layout = OverlayLayout()
    snapshotter = await LocalSnapshotter.open(node, root / "snapshots" / layout.name, layout)
    return FlotillaSide(image, layers, store, snapshotter, LayerApplier(store.blob_path))


async def over_nats(ctx: BenchContext, image: BuiltImage, layers: list[Layer]) -> FlotillaSide:
    """The node's content and snapshots services through their proxies."""
    node = await ctx.flotilla()
    snapshotter = await SnapshotterProxy.open(node.bus, SNAPSHOTTER, node=node.node)
    content = ContentProxy(node.bus, node=node.node)
    return FlotillaSide(image, layers, content, snapshotter, DiffProxy(node.bus, node=node.node))


def _seconds(action: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        start = time.perf_counter()
        await action()
        return time.perf_counter() - start

    return measure


async def run(ctx: BenchContext) -> list[Result]:
    """Cold unpack of the large image: seconds and MB/s (of uncompressed layers) per run."""
    size = QUICK_LARGE_SIZE if ctx.quick else FULL_LARGE_SIZE
    image = await asyncio.to_thread(build_large, ctx.cache_dir, size=size)
    layers = image_layers(image)
    unpacked = await asyncio.to_thread(unpacked_size, image, layers)
    tarball = await export_oci_tar(image, ctx.workdir / "unpack.tar", image_name=IMAGE_NAME)
    theirs = ContainerdSide(await ctx.containerd(), image, tarball)
    label = f"unpack large {size // MIB} MiB (8 layers, {unpacked / MB:.0f} MB), overlayfs, cold"
    results = []
    for how, ours in (
        ("in process", await in_process(ctx, image, layers)),
        ("over NATS", await over_nats(ctx, image, layers)),
    ):
        base, mine = await _measure(ctx, theirs, ours)
        case = f"{label}, {how}"
        results += [
            Result(case, "s", "containerd", base, mine, higher_is_better=False),
            Result(
                case, "MB/s", "containerd", _rates(unpacked, base), _rates(unpacked, mine), True
            ),
        ]
    return results


async def _measure(ctx: BenchContext, theirs: Side, ours: Side) -> tuple[list[float], list[float]]:
    async def reset() -> None:
        await theirs.ready()
        await ours.ready()
        await asyncio.to_thread(drop_caches)
        await theirs.prime()
        await ours.prime()

    return await abab(
        _seconds(theirs.unpack), _seconds(ours.unpack), rounds=ctx.rounds(5), reset=reset
    )


def _rates(size: int, seconds: list[float]) -> list[float]:
    return [size / MB / elapsed for elapsed in seconds]
