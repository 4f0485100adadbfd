"""The content conformance suite through the NATS proxy, against the real service on real NATS.

The service is built with its own composition root (``flotilla.content.__main__.build``) on a
temporary root; events are read back from the bus, so they are checked as JetStream stored them.
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
from flotilla.content.__main__ import build
from flotilla.content.events import ContentCreate, ContentDelete
from flotilla.content.proxy import ContentProxy
from flotilla.content.store import Store
from flotilla.content.testsuite import ContentSuite, EventLog, Restart

NODE = "test-node"
_envelope = msgspec.msgpack.Decoder(Envelope)
_event = msgspec.msgpack.Decoder(ContentCreate | ContentDelete)


class BusEvents:
    """An EventLog fed by a subscription to every event subject."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Event]] = []

    async def on_message(self, msg: Msg) -> None:
        envelope = _envelope.decode(msg.data)
        assert topic_of(msg.subject) == envelope.topic
        self.events.append((envelope.namespace, envelope.topic, _event.decode(envelope.event)))

    def seen(self) -> Sequence[tuple[str, str, Event]]:
        return list(self.events)


class ServiceUnderTest:
    """The content service, built in this process, restartable over the same root."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stack = AsyncExitStack()

    async def start(self) -> None:
        self.stack = AsyncExitStack()
        await self.stack.enter_async_context(runtime.running("content", self.config, build))

    async def stop(self) -> None:
        await self.stack.aclose()


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
    async def service(self, tmp_path: Path, nats_url: str) -> AsyncIterator[ServiceUnderTest]:
        service = ServiceUnderTest(service_config(tmp_path / "root", nats_url))
        await service.start()
        yield service
        await service.stop()

    @pytest.fixture
    async def events(self, bus: Bus) -> EventLog:
        log = BusEvents()
        await bus.nc.subscribe(f"{EVENTS_PREFIX}.>", cb=log.on_message)
        await bus.nc.flush()
        return log

    @pytest.fixture
    def store(self, service: ServiceUnderTest, bus: Bus, events: EventLog) -> Store:
        proxy = ContentProxy(bus, node=NODE)
        assert proxy.same_node_files
        return proxy

    @pytest.fixture
    def restart(self, service: ServiceUnderTest, store: Store) -> Restart:
        async def restart() -> Store:
            await service.stop()
            await service.start()
            return store

        return restart


class TestContentOverNats(TestContentSameNode):
    """A caller elsewhere: every byte rides the bus."""

    @pytest.fixture
    def store(self, service: ServiceUnderTest, bus: Bus, events: EventLog) -> Store:
        return ContentProxy(bus, node=NODE, same_node_files=False)
