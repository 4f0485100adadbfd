"""The local snapshotters' own promises: mount shapes, crash leftovers, cleanup."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, lower_dirs, mount_all, unmount
from flotilla.snapshots.local import LocalSnapshotter, NodeSnapshots
from flotilla.snapshots.native import NativeLayout
from flotilla.snapshots.overlay import OverlayLayout, probe
from flotilla.testkit.events import RecordingPublisher

pytestmark = pytest.mark.root
NS = "default"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeSnapshots]:
    node = NodeSnapshots(tmp_path / "metadata.db", RecordingPublisher())
    await node.open()
    yield node
    await node.close()


async def test_overlay_mount_shapes(node: NodeSnapshots, tmp_path: Path) -> None:
    """Bind without parents, a read-only bind for a one-layer view, overlays otherwise."""
    overlay = await LocalSnapshotter.open(node, tmp_path / "overlayfs", OverlayLayout())
    [bind] = await overlay.prepare(NS, "a")
    assert (bind.type, bind.options) == ("bind", ("rw", "rbind"))
    await overlay.commit(NS, "a-c", "a")
    [view] = await overlay.view(NS, "v", "a-c")
    assert view == Mount(type="bind", source=bind.source, options=("ro", "rbind"))
    [active] = await overlay.prepare(NS, "b", "a-c")
    assert active.type == "overlay"
    assert lower_dirs(active) == [bind.source]
    await overlay.commit(NS, "b-c", "b")
    [deep_view] = await overlay.view(NS, "v2", "b-c")
    assert deep_view.type == "overlay"
    assert len(lower_dirs(deep_view)) == 2
    assert not any(option.startswith("upperdir=") for option in deep_view.options)
    # Short numeric directory ids keep 128 layers' options small.
    assert all(Path(d).parent.name.isdigit() for d in lower_dirs(deep_view))


async def test_native_copies_parent(node: NodeSnapshots, tmp_path: Path) -> None:
    """A native snapshot is a bind of a full copy of its parent."""
    native = await LocalSnapshotter.open(node, tmp_path / "native", NativeLayout())
    [first] = await native.prepare(NS, "a")
    (Path(first.source) / "file").write_bytes(b"data")
    await native.commit(NS, "a-c", "a")
    [second] = await native.prepare(NS, "b", "a-c")
    assert second.type == "bind"
    assert second.source != first.source
    assert (Path(second.source) / "file").read_bytes() == b"data"
    assert not native.can_rebase


async def test_crash_leftovers_removed(node: NodeSnapshots, tmp_path: Path) -> None:
    """Directories no record owns (a crash mid-prepare or mid-remove) go at open and cleanup."""
    root = tmp_path / "overlayfs"
    overlay = await LocalSnapshotter.open(node, root, OverlayLayout())
    await overlay.prepare(NS, "kept")
    owned = {path.name for path in root.iterdir()}
    for leftover in ("new-0123abcd", "rm-7", "999"):
        (root / leftover / "fs").mkdir(parents=True)
        (root / leftover / "fs" / "junk").write_bytes(b"x")
    reopened = await LocalSnapshotter.open(node, root, OverlayLayout())
    assert {path.name for path in root.iterdir()} == owned
    (root / "998").mkdir()
    await reopened.cleanup()
    assert {path.name for path in root.iterdir()} == owned
    assert [info.name async for info in reopened.walk(NS)] == ["kept"]


async def test_stale_directory_never_reused(node: NodeSnapshots, tmp_path: Path) -> None:
    """A directory left at the next id (a crash after its rename) never leaks into a snapshot."""
    root = tmp_path / "overlayfs"
    overlay = await LocalSnapshotter.open(node, root, OverlayLayout())
    [first] = await overlay.prepare(NS, "one")
    next_id = int(Path(first.source).parent.name) + 1
    (root / str(next_id) / "fs").mkdir(parents=True)
    (root / str(next_id) / "fs" / "stale").write_bytes(b"x")
    [second] = await overlay.prepare(NS, "two")
    assert not any(os.scandir(second.source))


def test_probe_refuses_overlay_on_overlay(tmp_path: Path) -> None:
    """overlayfs cannot stack on an overlay: the probe says so, naming the root."""
    probe(tmp_path / "ok")  # a plain file system works
    lower, upper, work, merged = (tmp_path / n for n in ("l", "u", "w", "m"))
    for directory in (lower, upper, work, merged):
        directory.mkdir()
    options = (f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}")
    mount_all([Mount(type="overlay", source="overlay", options=options)], merged)
    try:
        with pytest.raises(errdefs.Unavailable, match="overlayfs does not work"):
            probe(merged / "root")
    finally:
        unmount(merged)
