"""Applying a layer while its bytes still arrive in the content ingest.

The images service writes a layer into the node's content ingest and asks the diff service to
apply it at the same time: the applier reads the ingest's file as it grows. Real content and
snapshots services on one node, real files; and the follower itself (``follow.py``) on a file a
thread appends to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import tarfile
import threading
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.common.mounts import Mount
from flotilla.content import convert
from flotilla.content.local import LocalStore
from flotilla.content.proxy import ContentProxy, ProxyWriter
from flotilla.snapshots.diff.apply import LayerApplier
from flotilla.snapshots.diff.compression import open_tar_stream
from flotilla.snapshots.diff.differ import LAYER_GZIP, LAYER_TAR, LAYER_ZSTD, Descriptor
from flotilla.snapshots.diff.follow import GrowingFile
from flotilla.snapshots.proxy import DiffProxy, SnapshotterProxy
from flotilla.snapshots.snapshotter import Snapshotter
from flotilla.snapshots.testsuite.support import mounted, read_tree
from flotilla.testkit import tarlayer as t
from flotilla.testkit.content import RandomBytes
from flotilla.testkit.events import RecordingPublisher
from flotilla.testkit.services import node_services

NODE = "test-node"  # the bus fixture's own node: the test is a caller on the services' node
NS = "follow"
IDLE = 3.0  # the service's [snapshots] follow_idle here
CHUNK = 32 << 10
PAUSE = 0.002
MIB = 1 << 20


# The follower on its own.


def _file_id(fd: int) -> str:
    held = os.fstat(fd)
    return f"{held.st_dev}:{held.st_ino}"


def _append_slowly(path: Path, data: bytes, chunk: int = 4096) -> threading.Thread:
    """A thread that appends ``data`` to ``path`` a chunk at a time, pausing between chunks."""

    def run() -> None:
        with path.open("ab") as file:
            for start in range(0, len(data), chunk):
                file.write(data[start : start + chunk])
                file.flush()
                time.sleep(PAUSE)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _growing(path: Path, size: int, *, idle: float = 30.0) -> GrowingFile:
    path.touch()
    fd = os.open(path, os.O_RDONLY)
    opened = GrowingFile.open(path, _file_id(fd), size, label="layer x (ingest 'r')", idle=idle)
    os.close(fd)
    assert opened is not None
    return opened


def test_a_growing_file_is_read_to_its_size_as_it_arrives(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    path = tmp_path / "data"
    with _growing(path, len(data)) as file:
        writer = _append_slowly(path, data + b"bytes past the layer's end are never read")
        assert file.head(4) == data[:4]  # waits for them
        got = bytearray()
        while chunk := file.read(7000):
            got += chunk
        writer.join()
    assert got == data


def test_compressed_streams_are_inflated_as_they_arrive(tmp_path: Path) -> None:
    raw = os.urandom(50_000) + b"\0" * 100_000
    zstd = zstandard.ZstdCompressor().compress(raw)
    gzip = zlib.compress(raw, wbits=31)
    for media_type, data in ((LAYER_ZSTD, zstd), (LAYER_GZIP, gzip)):
        path = tmp_path / media_type.rsplit("+", 1)[-1]
        with _growing(path, len(data)) as file:
            writer = _append_slowly(path, data, chunk=1000)
            with open_tar_stream(file, media_type, name="sha256:x") as stream:
                got = b"".join(iter(lambda: stream.read(1 << 16), b""))
            writer.join()
        assert got == raw


def test_a_file_unlinked_with_bytes_missing_is_aborted(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with _growing(path, 100) as file:
        path.write_bytes(b"x" * 40)
        assert file.read(100) == b"x" * 40
        path.unlink()  # what content's abort does
        with pytest.raises(errdefs.Aborted, match=r"layer x \(ingest 'r'\).*60 of its 100 bytes"):
            file.read(100)


def test_a_file_that_stops_growing_is_idle(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with _growing(path, 100, idle=0.05) as file, pytest.raises(errdefs.DeadlineExceeded):
        file.read(10)


def test_a_stopped_follower_gives_up(tmp_path: Path) -> None:
    stop = threading.Event()
    path = tmp_path / "data"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    file = GrowingFile(fd, 100, label="layer x", idle=3600, stop=stop)
    threading.Timer(0.05, stop.set).start()
    with file, pytest.raises(errdefs.Canceled):
        file.read(10)
    assert file.closed


def test_open_wants_the_very_file(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"abc")
    assert GrowingFile.open(path, "0:0", 3, label="x", idle=1) is None
    assert GrowingFile.open(tmp_path / "missing", "0:0", 3, label="x", idle=1) is None


# The applier, in this process: a cancellation or a bad entry ends a follower that waits.


@dataclass
class Local:
    """A content store and an applier that follows its ingests, in this process."""

    store: LocalStore
    applier: LayerApplier
    target: Path

    @property
    def mounts(self) -> list[Mount]:
        return [Mount(type="bind", source=str(self.target), options=("rbind", "rw"))]


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Local]:
    """An idle limit far beyond the tests' timeout: only what a test does can end a wait."""
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as store:

        async def ingest_path(namespace: str, ref: str) -> tuple[Path, str]:
            path, identity = await store.ingest_path(namespace, ref)
            return path, convert.file_id(identity)

        applier = LayerApplier(store.blob_path, ingest_path=ingest_path, follow_idle=3600)
        target = tmp_path / "target"
        target.mkdir()
        yield Local(store, applier, target)


@pytest.mark.root
async def test_cancelling_an_apply_stops_the_follower(local: Local) -> None:
    layer = Descriptor(media_type=LAYER_GZIP, digest="sha256:" + "a" * 64, size=1000)
    async with await local.store.writer(NS, "stalled") as writer:
        await writer.write(b"\x1f\x8b")  # the start of a gzip stream, then nothing
        apply = asyncio.create_task(local.applier.apply(NS, layer, local.mounts, ref="stalled"))
        await asyncio.sleep(0.2)
        assert not apply.done()
        apply.cancel()
        with pytest.raises(asyncio.CancelledError):
            await apply
    assert list(local.target.iterdir()) == []


def _tar(files: Sequence[tuple[str, bytes]]) -> bytes:
    """A plain tar of ``files``, names taken as they are (``..`` included)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.root
async def test_a_bad_entry_fails_the_apply_while_the_download_stalls(local: Local) -> None:
    tar = _tar([("../escape", b"x" * 100), ("big", b"y" * MIB)])
    digest = "sha256:" + hashlib.sha256(tar).hexdigest()
    layer = Descriptor(media_type=LAYER_TAR, digest=digest, size=len(tar))
    async with await local.store.writer(NS, "bad") as writer:
        await writer.write(tar[:4096])  # the escaping entry, then a stall
        with pytest.raises(errdefs.InvalidArgument, match="escape"):
            await local.applier.apply(NS, layer, local.mounts, ref="bad")
    assert list(local.target.iterdir()) == []


# The diff service, with real content and snapshots services.


@pytest.fixture
async def services(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[Path]:
    root = tmp_path / "root"
    idle = {"FLOTILLA_SNAPSHOTS__FOLLOW_IDLE": str(IDLE)}
    async with node_services(bus, nats_url, root, ("content", "snapshots"), idle):
        yield root


@pytest.fixture
async def snapshotter(services: Path, bus: Bus) -> Snapshotter:
    return await SnapshotterProxy.open(bus, "overlayfs", node=NODE)


@pytest.fixture
def diff(services: Path, bus: Bus) -> DiffProxy:
    return DiffProxy(bus, node=NODE, timeout=120)


async def make_layer(tmp_path: Path, entries: Sequence[t.Entry]) -> t.WrittenLayer:
    return await asyncio.to_thread(t.write_layer, entries, tmp_path / "layer.tar.gz")


def descriptor(layer: t.WrittenLayer) -> Descriptor:
    return Descriptor(media_type=LAYER_GZIP, digest=layer.digest, size=layer.size)


async def write_slowly(writer: ProxyWriter, data: bytes) -> None:
    """Small chunks with pauses, as a download would come."""
    for start in range(0, len(data), CHUNK):
        await writer.write(data[start : start + CHUNK])
        await asyncio.sleep(PAUSE)


async def tree_of(snapshotter: Snapshotter, key: str, parent: str) -> dict[str, bytes | str]:
    async with mounted(await snapshotter.view(NS, key, parent)) as root:
        return await asyncio.to_thread(read_tree, root)


def _listing(directory: str) -> list[str]:
    return os.listdir(directory)


ENTRIES = (
    t.file("etc/hostname", b"flotilla\n"),
    t.file("data/big", RandomBytes(2 * MIB + 7, "follow")),
    t.symlink("etc/alias", "hostname"),
    t.file("data/after", b"written last"),
)


@pytest.mark.root
@pytest.mark.parametrize("same_node_files", [True, False], ids=["into the file", "over NATS"])
async def test_a_layer_is_applied_while_it_arrives(
    snapshotter: Snapshotter, diff: DiffProxy, bus: Bus, tmp_path: Path, same_node_files: bool
) -> None:
    layer = await make_layer(tmp_path, ENTRIES)
    data = await asyncio.to_thread(layer.path.read_bytes)
    mounts = await snapshotter.prepare(NS, "extract")
    ref = f"layer-{layer.digest}"
    apply = asyncio.create_task(
        diff.apply(NS, descriptor(layer), mounts, diff_id=layer.diff_id, ref=ref)
    )
    await asyncio.sleep(0.2)  # the apply starts before the ingest exists
    assert not apply.done()

    content = ContentProxy(bus, node=NODE, same_node_files=same_node_files)
    writer = await content.writer(NS, ref, layer.size, layer.digest)
    await write_slowly(writer, data)
    # Every byte is in the ingest, none committed: a follower needs no more.
    applied = await apply
    assert (applied.media_type, applied.digest) == (LAYER_TAR, layer.diff_id)
    await writer.commit(layer.size, layer.digest)

    await snapshotter.commit(NS, "layer", "extract")
    tree = await tree_of(snapshotter, "view", "layer")
    assert tree["etc/hostname"] == b"flotilla\n"
    assert tree["etc/alias"] == "->hostname"
    assert tree["data/after"] == b"written last"
    assert len(tree["data/big"]) == 2 * MIB + 7


@pytest.mark.root
async def test_an_ingest_aborted_midway_fails_the_apply_and_leaves_nothing(
    snapshotter: Snapshotter, diff: DiffProxy, bus: Bus, tmp_path: Path
) -> None:
    layer = await make_layer(tmp_path, ENTRIES)
    data = await asyncio.to_thread(layer.path.read_bytes)
    mounts = await snapshotter.prepare(NS, "extract")
    ref = f"layer-{layer.digest}"
    apply = asyncio.create_task(diff.apply(NS, descriptor(layer), mounts, ref=ref))
    content = ContentProxy(bus, node=NODE)
    writer = await content.writer(NS, ref, layer.size, layer.digest)
    await write_slowly(writer, data[: len(data) // 2])
    await content.abort(NS, ref)
    with contextlib.suppress(errdefs.ErrdefsError):
        await writer.close()
    with pytest.raises(errdefs.Aborted) as raised:
        await apply
    assert layer.digest in str(raised.value)
    assert ref in str(raised.value)
    assert await asyncio.to_thread(_listing, mounts[0].source) == []


@pytest.mark.root
async def test_an_ingest_that_stops_growing_fails_the_apply_after_the_idle_limit(
    snapshotter: Snapshotter, diff: DiffProxy, bus: Bus, tmp_path: Path
) -> None:
    layer = await make_layer(tmp_path, ENTRIES)
    data = await asyncio.to_thread(layer.path.read_bytes)
    mounts = await snapshotter.prepare(NS, "extract")
    ref = f"layer-{layer.digest}"
    content = ContentProxy(bus, node=NODE)
    async with await content.writer(NS, ref, layer.size, layer.digest) as writer:
        await writer.write(data[: len(data) // 3])
        with pytest.raises(errdefs.DeadlineExceeded, match="no new bytes") as raised:
            await diff.apply(NS, descriptor(layer), mounts, ref=ref)
    assert ref in str(raised.value)
    assert await asyncio.to_thread(_listing, mounts[0].source) == []


@pytest.mark.root
async def test_an_ingest_that_never_appears_fails_the_apply_after_the_idle_limit(
    snapshotter: Snapshotter, diff: DiffProxy, tmp_path: Path
) -> None:
    layer = await make_layer(tmp_path, ENTRIES)
    mounts = await snapshotter.prepare(NS, "extract")
    with pytest.raises(errdefs.DeadlineExceeded, match="neither the blob nor the ingest"):
        await diff.apply(NS, descriptor(layer), mounts, ref="never")


@pytest.mark.root
async def test_a_committed_blob_is_read_whatever_the_ref(
    snapshotter: Snapshotter, diff: DiffProxy, bus: Bus, tmp_path: Path
) -> None:
    layer = await make_layer(tmp_path, ENTRIES)
    data = await asyncio.to_thread(layer.path.read_bytes)
    content = ContentProxy(bus, node=NODE)
    async with await content.writer(NS, "done", layer.size, layer.digest) as writer:
        await writer.write(data)
        await writer.commit(layer.size, layer.digest)
    mounts = await snapshotter.prepare(NS, "extract")
    applied = await diff.apply(
        NS, descriptor(layer), mounts, diff_id=layer.diff_id, ref="no such ingest"
    )
    assert applied.digest == layer.diff_id
    tree = await asyncio.to_thread(read_tree, Path(mounts[0].source))
    assert tree["data/after"] == b"written last"
