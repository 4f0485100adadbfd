"""The snapshotter conformance suite through the NATS proxy, against the real service on real NATS.

The service is built with its own composition root (``flotilla.snapshots.__main__.build``) on
a temporary root, once per snapshotter it serves; events are read back from the bus, so they
are checked as JetStream stored them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import pytest
from nats.aio.msg import Msg

from flotilla.common import runtime
from flotilla.common.bus import Bus
from flotilla.common.config import Config, NatsConfig
from flotilla.common.events import Envelope, Event
from flotilla.common.subjects import EVENTS_PREFIX, topic_of
from flotilla.content.testsuite import EventLog
from flotilla.snapshots.__main__ import build
from flotilla.snapshots.events import SnapshotCommit, SnapshotPrepare, SnapshotRemove
from flotilla.snapshots.proxy import SnapshotterProxy
from flotilla.snapshots.snapshotter import Snapshotter
from flotilla.snapshots.testsuite import SnapshotterSuite
from flotilla.snapshots.testsuite.support import Restart

pytestmark = pytest.mark.root

NODE = "test-node"
_envelope = msgspec.msgpack.Decoder(Envelope)
_event = msgspec.msgpack.Decoder(SnapshotPrepare | SnapshotCommit | SnapshotRemove)


class BusEvents:
    """An EventLog fed by a subscription to every snapshot event subject."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Event]] = []

    async def on_message(self, msg: Msg) -> None:
        envelope = _envelope.decode(msg.data)
        assert topic_of(msg.subject) == envelope.topic
        self.events.append((envelope.namespace, envelope.topic, _event.decode(envelope.event)))

    def seen(self) -> Sequence[tuple[str, str, Event]]:
        return list(self.events)


class ServiceUnderTest:
    """The snapshots service, built in this process, restartable over the same root."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stack = AsyncExitStack()

    async def start(self) -> None:
        self.stack = AsyncExitStack()
        await self.stack.enter_async_context(runtime.running("snapshots", self.config, build))

    async def stop(self) -> None:
        await self.stack.aclose()


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
    async def service(self, tmp_path: Path, nats_url: str) -> AsyncIterator[ServiceUnderTest]:
        service = ServiceUnderTest(service_config(tmp_path / "root", nats_url))
        await service.start()
        yield service
        await service.stop()

    @pytest.fixture
    async def events(self, bus: Bus) -> EventLog:
        log = BusEvents()
        await bus.nc.subscribe(f"{EVENTS_PREFIX}.snapshot.>", cb=log.on_message)
        await bus.flush()
        return log

    @pytest.fixture
    async def snapshotter(
        self, service: ServiceUnderTest, bus: Bus, events: EventLog
    ) -> Snapshotter:
        proxy = await SnapshotterProxy.open(bus, self.snapshotter_name, node=NODE)
        assert proxy.name == self.snapshotter_name
        assert proxy.root == Path(service.config.root) / "snapshots" / self.snapshotter_name
        return proxy

    @pytest.fixture
    def restart(self, service: ServiceUnderTest, snapshotter: Snapshotter) -> Restart:
        async def restart() -> Snapshotter:
            await service.stop()
            await service.start()
            return snapshotter

        return restart


class TestNativeThroughTheService(TestOverlayfsThroughTheService):
    """native, likewise."""

    snapshotter_name = "native"
