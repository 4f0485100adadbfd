"""The snapshotter conformance suite through the NATS proxy, against the real service on real NATS.

The service is built with its own composition root (``flotilla.snapshots.__main__.build``) on
a temporary root, once per snapshotter it serves; events are read back from the bus, so they
are checked as JetStream stored them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from flotilla.common.bus import Bus
from flotilla.common.config import Config, NatsConfig
from flotilla.common.subjects import EVENTS_PREFIX
from flotilla.snapshots.__main__ import build
from flotilla.snapshots.events import SnapshotCommit, SnapshotPrepare, SnapshotRemove
from flotilla.snapshots.proxy import SnapshotterProxy
from flotilla.snapshots.snapshotter import Snapshotter
from flotilla.snapshots.testsuite import SnapshotterSuite
from flotilla.snapshots.testsuite.support import Restart
from flotilla.testkit.suite import BusEvents, EventLog, InProcessService

pytestmark = pytest.mark.root

NODE = "test-node"
EVENTS = msgspec.msgpack.Decoder(SnapshotPrepare | SnapshotCommit | SnapshotRemove)


def service_config(root: Path, nats_url: str) -> Config:
    return Config(
        root=str(root),
        node_id=NODE,
        nats=NatsConfig(urls=(nats_url,), connect_timeout=5),
    )


class TestOverlayfsThroughTheService(SnapshotterSuite):
    """overlayfs, as a caller on the service's node reaches it."""

    snapshotter_name = "overlayfs"

    @pytest.fixture
    async def service(self, tmp_path: Path, nats_url: str) -> AsyncIterator[InProcessService]:
        service = InProcessService("snapshots", service_config(tmp_path / "root", nats_url), build)
        await service.start()
        yield service
        await service.stop()

    @pytest.fixture
    async def events(self, bus: Bus) -> EventLog:
        log = BusEvents(EVENTS)
        await bus.nc.subscribe(f"{EVENTS_PREFIX}.snapshot.>", cb=log.on_message)
        await bus.flush()
        return log

    @pytest.fixture
    async def snapshotter(
        self, service: InProcessService, bus: Bus, events: EventLog
    ) -> Snapshotter:
        proxy = await SnapshotterProxy.open(bus, self.snapshotter_name, node=NODE)
        assert proxy.name == self.snapshotter_name
        assert proxy.root == Path(service.config.root) / "snapshots" / self.snapshotter_name
        return proxy

    @pytest.fixture
    def restart(self, service: InProcessService, snapshotter: Snapshotter) -> Restart:
        async def restart() -> Snapshotter:
            await service.stop()
            await service.start()
            return snapshotter

        return restart


class TestNativeThroughTheService(TestOverlayfsThroughTheService):
    """native, likewise."""

    snapshotter_name = "native"
