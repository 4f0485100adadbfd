"""The content conformance suite through the NATS proxy, against the real service on real NATS.

The service is built with its own composition root (``flotilla.content.__main__.build``) on a
temporary root; events are read back from the bus, so they are checked as JetStream stored them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from flotilla.common.bus import Bus
from flotilla.common.config import Config, NatsConfig
from flotilla.common.subjects import EVENTS_PREFIX
from flotilla.content.__main__ import build
from flotilla.content.events import ContentCreate, ContentDelete
from flotilla.content.proxy import ContentProxy
from flotilla.content.store import Store
from flotilla.content.testsuite import ContentSuite, Restart
from flotilla.testkit.suite import BusEvents, EventLog, InProcessService

NODE = "test-node"
EVENTS = msgspec.msgpack.Decoder(ContentCreate | ContentDelete)


def service_config(root: Path, nats_url: str, lease: float = 30.0) -> Config:
    return Config(
        root=str(root),
        node_id=NODE,
        nats=NatsConfig(urls=(nats_url,), connect_timeout=5),
        sections={"content": {"session_lease": lease}},
    )


class TestContentSameNode(ContentSuite):
    """A caller on the service's node: requests over the bus, bytes into the ingest's file."""

    @pytest.fixture
    async def service(self, tmp_path: Path, nats_url: str) -> AsyncIterator[InProcessService]:
        service = InProcessService("content", service_config(tmp_path / "root", nats_url), build)
        await service.start()
        yield service
        await service.stop()

    @pytest.fixture
    async def events(self, bus: Bus) -> EventLog:
        log = BusEvents(EVENTS)
        await bus.nc.subscribe(f"{EVENTS_PREFIX}.>", cb=log.on_message)
        await bus.nc.flush()
        return log

    @pytest.fixture
    def store(self, service: InProcessService, bus: Bus, events: EventLog) -> Store:
        proxy = ContentProxy(bus, node=NODE)
        assert proxy.same_node_files
        return proxy

    @pytest.fixture
    def restart(self, service: InProcessService, store: Store) -> Restart:
        async def restart() -> Store:
            await service.stop()
            await service.start()
            return store

        return restart


class TestContentOverNats(TestContentSameNode):
    """A caller elsewhere: every byte rides the bus."""

    @pytest.fixture
    def store(self, service: InProcessService, bus: Bus, events: EventLog) -> Store:
        return ContentProxy(bus, node=NODE, same_node_files=False)
