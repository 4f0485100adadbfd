"""The snapshotter conformance suite against both local snapshotters, and their local-only cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.snapshots.layout import Layout
from flotilla.snapshots.local import LocalSnapshotter, NodeSnapshots
from flotilla.snapshots.native import NativeLayout
from flotilla.snapshots.overlay import OverlayLayout
from flotilla.snapshots.snapshotter import Snapshotter
from flotilla.snapshots.testsuite import SnapshotterSuite
from flotilla.snapshots.testsuite.support import Restart
from flotilla.testkit.events import RecordingPublisher
from flotilla.testkit.suite import EventLog, RecordedEvents

pytestmark = pytest.mark.root


class Opened:
    """Every node store and snapshotter opened on the test's root; the last are live."""

    def __init__(self, root: Path, layout: Layout, publisher: RecordingPublisher) -> None:
        self.root, self.layout, self.publisher = root, layout, publisher
        self.nodes: list[NodeSnapshots] = []
        self.snapshotters: list[LocalSnapshotter] = []

    async def open(self) -> LocalSnapshotter:
        node = NodeSnapshots(self.root / "metadata.db", self.publisher)
        await node.open()
        self.nodes.append(node)
        snapshotter = await LocalSnapshotter.open(node, self.root / self.layout.name, self.layout)
        self.snapshotters.append(snapshotter)
        return snapshotter

    async def close(self) -> None:
        for snapshotter in self.snapshotters:
            await snapshotter.close()
        for node in self.nodes:
            await node.close()


class LocalSuite(SnapshotterSuite):
    layout: Layout

    @pytest.fixture
    def publisher(self) -> RecordingPublisher:
        return RecordingPublisher()

    @pytest.fixture
    def events(self, publisher: RecordingPublisher) -> EventLog:
        return RecordedEvents(publisher)

    @pytest.fixture
    async def opened(self, tmp_path: Path, publisher: RecordingPublisher) -> AsyncIterator[Opened]:
        opened = Opened(tmp_path / "snapshots", self.layout, publisher)
        yield opened
        await opened.close()

    @pytest.fixture
    async def snapshotter(self, opened: Opened) -> Snapshotter:
        return await opened.open()

    @pytest.fixture
    def restart(self, opened: Opened) -> Restart:
        async def restart() -> Snapshotter:
            await opened.close()
            return await opened.open()

        return restart


class TestOverlaySnapshotter(LocalSuite):
    layout = OverlayLayout()


class TestNativeSnapshotter(LocalSuite):
    layout = NativeLayout()


async def test_namespaces_per_snapshotter(tmp_path: Path) -> None:
    """Snapshotters share the node's records, but each lists the namespaces of its own only."""
    node = NodeSnapshots(tmp_path / "metadata.db", RecordingPublisher())
    await node.open()
    try:
        overlay = await LocalSnapshotter.open(node, tmp_path / "overlayfs", OverlayLayout())
        native = await LocalSnapshotter.open(node, tmp_path / "native", NativeLayout())
        await native.prepare("only-native", "work")
        await overlay.prepare("both", "work")
        await native.prepare("both", "work")
        assert await native.namespaces() == ["both", "only-native"]
        assert await overlay.namespaces() == ["both"]
    finally:
        await node.close()
