"""The snapshots service as a real process on real NATS: events, names, errors and a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from flotilla.common import errdefs, headers
from flotilla.common.bus import Bus
from flotilla.common.events import Envelope
from flotilla.common.mounts import Mount, mount_all, unmount
from flotilla.common.subjects import EVENTS_STREAM, topic_of
from flotilla.content.proxy import ContentProxy
from flotilla.snapshots import api
from flotilla.snapshots.diff.differ import LAYER_GZIP, Descriptor
from flotilla.snapshots.events import SnapshotCommit, SnapshotPrepare, SnapshotRemove
from flotilla.snapshots.proxy import DiffProxy, SnapshotterProxy, loaded_snapshotters
from flotilla.snapshots.snapshotter import Kind
from flotilla.testkit import tarlayer as t
from flotilla.testkit.content import RandomBytes
from flotilla.testkit.services import ServiceProcess

pytestmark = pytest.mark.root

NODE = "test-node"  # the bus fixture's own node: the test is a caller on the services' node
NS = "integration"
MIB = 1 << 20
BIG = 1 << 30


@pytest.fixture
def env(tmp_path: Path, nats_url: str) -> dict[str, str]:
    return {
        "FLOTILLA_ROOT": str(tmp_path / "root"),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": NODE,
        "FLOTILLA_LOG_LEVEL": "warning",
    }


@pytest.fixture
async def snapshots(env: dict[str, str]) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess("snapshots", env)
    yield service
    await service.kill()


@pytest.fixture
async def content(env: dict[str, str]) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess("content", env)
    yield service
    await service.kill()


async def test_events_are_stored_in_jetstream(snapshots: ServiceProcess, bus: Bus) -> None:
    await snapshots.start(bus)
    proxy = await SnapshotterProxy.open(bus, "overlayfs", node=NODE)
    await proxy.prepare(NS, "base-active")
    await proxy.commit(NS, "base", "base-active")
    await proxy.prepare(NS, "work", "base")
    await proxy.view(NS, "look", "base")  # containerd publishes nothing for a view
    await proxy.remove(NS, "work")
    js = bus.nc.jetstream()
    for subject, expected in (
        (
            "flotilla.events.snapshot.prepare",
            SnapshotPrepare(key="work", parent="base", snapshotter="overlayfs"),
        ),
        (
            "flotilla.events.snapshot.commit",
            SnapshotCommit(key="base-active", name="base", snapshotter="overlayfs"),
        ),
        ("flotilla.events.snapshot.remove", SnapshotRemove(key="work", snapshotter="overlayfs")),
    ):
        stored = await js.get_last_msg(EVENTS_STREAM, subject)
        envelope = msgspec.msgpack.decode(stored.data or b"", type=Envelope)
        assert (envelope.namespace, envelope.topic) == (NS, topic_of(subject))
        assert msgspec.msgpack.decode(envelope.event, type=type(expected)) == expected


async def test_the_node_reports_its_snapshotters(snapshots: ServiceProcess, bus: Bus) -> None:
    await snapshots.start(bus)
    loaded = await loaded_snapshotters(bus, NODE)
    assert loaded.default == "overlayfs"
    assert [(s.name, s.capabilities) for s in loaded.snapshotters] == [
        ("overlayfs", (api.CAPABILITY_REBASE,)),
        ("native", ()),
    ]
    default = await SnapshotterProxy.open(bus, node=NODE)
    assert (default.name, default.can_rebase) == ("overlayfs", True)
    native = await SnapshotterProxy.open(bus, "native", node=NODE)
    assert (native.name, native.can_rebase) == ("native", False)
    await SnapshotterProxy(bus, "", node=NODE).prepare(NS, "by-default")
    assert (await default.stat(NS, "by-default")).kind is Kind.ACTIVE
    with pytest.raises(errdefs.NotFound):
        await native.stat(NS, "by-default")  # each snapshotter has its own keys


async def test_the_configured_default(snapshots: ServiceProcess, bus: Bus) -> None:
    snapshots.env["FLOTILLA_SNAPSHOTS__DEFAULT"] = "native"
    await snapshots.start(bus)
    assert (await SnapshotterProxy.open(bus, node=NODE)).name == "native"
    await SnapshotterProxy(bus, "", node=NODE).prepare(NS, "k")
    assert (await SnapshotterProxy(bus, "native", node=NODE).stat(NS, "k")).name == "k"


async def test_an_unknown_default_is_refused_at_start(env: dict[str, str]) -> None:
    env = {**os.environ, **env, "FLOTILLA_SNAPSHOTS__DEFAULT": "zfs"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flotilla.snapshots", env=env, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert b"snapshotter zfs" in err


async def test_an_unknown_snapshotter_is_invalid_argument(
    snapshots: ServiceProcess, bus: Bus
) -> None:
    await snapshots.start(bus)
    unknown = SnapshotterProxy(bus, "btrfs", node=NODE)
    message = "^snapshotter not loaded: btrfs$"
    with pytest.raises(errdefs.InvalidArgument, match=message):
        await unknown.prepare(NS, "k")
    with pytest.raises(errdefs.InvalidArgument, match=message):
        await unknown.stat(NS, "k")
    with pytest.raises(errdefs.InvalidArgument, match=message):
        [info async for info in unknown.walk(NS)]
    with pytest.raises(errdefs.InvalidArgument, match=message):
        await SnapshotterProxy.open(bus, "btrfs", node=NODE)


async def test_errors_cross_the_bus_with_their_class(snapshots: ServiceProcess, bus: Bus) -> None:
    await snapshots.start(bus)
    proxy = await SnapshotterProxy.open(bus, "overlayfs", node=NODE)
    with pytest.raises(errdefs.NotFound, match="snapshot missing does not exist"):
        await proxy.stat(NS, "missing")
    await proxy.prepare(NS, "active")
    with pytest.raises(errdefs.AlreadyExists, match="snapshot active already exists"):
        await proxy.prepare(NS, "active")
    with pytest.raises(errdefs.InvalidArgument, match="not committed"):
        await proxy.prepare(NS, "child", "active")
    await proxy.commit(NS, "base", "active")
    await proxy.view(NS, "look", "base")
    with pytest.raises(errdefs.FailedPrecondition, match="view"):
        await proxy.commit(NS, "nope", "look")
    with pytest.raises(errdefs.FailedPrecondition, match="with child"):
        await proxy.remove(NS, "base")
    with pytest.raises(errdefs.FailedPrecondition, match="committed"):
        await proxy.mounts(NS, "base")
    with pytest.raises(errdefs.InvalidArgument):
        await proxy.stat("bad namespace!", "base")
    msg = await bus.nc.request(
        api.STAT.subject(NODE), b"\xc1garbage", timeout=5, headers={headers.NAMESPACE: NS}
    )
    assert isinstance(headers.error_from(msg.headers), errdefs.InvalidArgument)


async def test_sigterm_stops_cleanly(snapshots: ServiceProcess, bus: Bus) -> None:
    await snapshots.start(bus)
    assert await snapshots.stop() == 0


async def test_start_up_clears_what_a_killed_diff_left(
    snapshots: ServiceProcess, bus: Bus, tmp_path: Path
) -> None:
    work_dir, kept = tmp_path / "root" / "snapshots" / "diff", tmp_path / "kept"
    (work_dir / "flotilla-mount-x").mkdir(parents=True)
    kept.mkdir()
    (kept / "precious").write_bytes(b"never deleted through a mount")
    (work_dir / "layer-x.tmp").write_bytes(b"half a layer")
    bind = Mount(type="bind", source=str(kept), options=("rbind",))
    await asyncio.to_thread(mount_all, [bind], work_dir / "flotilla-mount-x")
    try:
        await snapshots.start(bus)
    finally:
        with contextlib.suppress(errdefs.NotFound):  # gone, as it should be
            await asyncio.to_thread(unmount, work_dir / "flotilla-mount-x")
    assert await asyncio.to_thread(os.listdir, work_dir) == []
    assert (kept / "precious").read_bytes() == b"never deleted through a mount"


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, 4 * MIB):
            yield chunk


async def _ingest(bus: Bus, layer: t.WrittenLayer) -> Descriptor:
    store = ContentProxy(bus, node=NODE)
    async with await store.writer(NS, "big-layer", layer.size, layer.digest) as writer:
        await writer.copy_from(_chunks(layer.path))
        await writer.commit(layer.size, layer.digest)
    return Descriptor(media_type=LAYER_GZIP, digest=layer.digest, size=layer.size)


def _written(tree: Path) -> int:
    try:
        return (tree / "big").stat().st_size
    except FileNotFoundError:
        return 0


def _mounts_under(directory: Path) -> list[str]:
    """Mount points, or bind sources, of this mount namespace that lie under ``directory``."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if str(directory) in line]


@pytest.mark.slow
async def test_kill_9_during_an_apply_leaves_only_the_active_snapshot(
    content: ServiceProcess, snapshots: ServiceProcess, bus: Bus, tmp_path: Path
) -> None:
    await content.start(bus)
    await snapshots.start(bus)
    big = t.file("big", RandomBytes(BIG, "crash"))
    layer = await asyncio.to_thread(t.write_layer, [big], tmp_path / "big.tar.gz", compresslevel=0)
    descriptor = await _ingest(bus, layer)
    await asyncio.to_thread(layer.path.unlink)
    proxy = await SnapshotterProxy.open(bus, "overlayfs", node=NODE)
    mounts = await proxy.prepare(NS, "extract")
    tree = Path(mounts[0].source)  # a layer without parent is a bind of its own tree
    apply = asyncio.create_task(DiffProxy(bus, node=NODE).apply(NS, descriptor, mounts))
    while await asyncio.to_thread(_written, tree) < 64 * MIB:
        assert not apply.done(), "the apply ended before the kill"
        await asyncio.sleep(0.005)
    await snapshots.kill()
    apply.cancel()  # its reply will never come: the process that owed it is gone
    with contextlib.suppress(asyncio.CancelledError):
        await apply
    assert await asyncio.to_thread(_written, tree) < BIG

    await snapshots.start(bus)
    found = [(info.name, info.kind) async for info in proxy.walk(NS)]
    assert found == [("extract", Kind.ACTIVE)]  # nothing half-applied was committed
    await proxy.remove(NS, "extract")
    await proxy.cleanup()
    root = tmp_path / "root" / "snapshots"
    for name in ("overlayfs", "native"):
        assert await asyncio.to_thread(os.listdir, root / name) == []
    assert await asyncio.to_thread(_mounts_under, root) == []

    mounts = await proxy.prepare(NS, "again")  # and the same layer applies in full now
    applied = await DiffProxy(bus, node=NODE).apply(NS, descriptor, mounts, diff_id=layer.diff_id)
    assert applied.digest == layer.diff_id
    assert await asyncio.to_thread(_written, Path(mounts[0].source)) == BIG
