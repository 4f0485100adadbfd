"""Cluster records on a real nats-server with JetStream, and their events on the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from flotilla.common.bus import Bus
from flotilla.common.subjects import EVENTS_PREFIX
from flotilla.metadata import Metadata, events
from flotilla.testkit.suite import BusEvents

EVENT_TYPES = (
    events.NamespaceCreate
    | events.NamespaceUpdate
    | events.NamespaceDelete
    | events.ImageCreate
    | events.ImageUpdate
    | events.ImageDelete
    | events.ContainerCreate
    | events.ContainerUpdate
    | events.ContainerDelete
)


@pytest.fixture
async def metadata(bus: Bus) -> Metadata:
    """The records on the test's nats-server."""
    return await Metadata.open(bus.nc)


@pytest.fixture
async def seen(bus: Bus) -> AsyncIterator[BusEvents]:
    """Every record event published from now on."""
    log = BusEvents(msgspec.msgpack.Decoder(EVENT_TYPES))
    subscription = await bus.nc.subscribe(f"{EVENTS_PREFIX}.>", cb=log.on_message)
    await bus.flush()
    yield log
    await subscription.unsubscribe()
