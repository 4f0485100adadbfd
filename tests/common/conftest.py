from collections.abc import AsyncIterator

import pytest

from flotilla.common.bus import Bus, ServiceHost, connect

from .echo_service import EchoHandlers, echo_host


@pytest.fixture
def handlers() -> EchoHandlers:
    return EchoHandlers()


@pytest.fixture
async def server_bus(nats_url: str) -> AsyncIterator[Bus]:
    """The echo service's own connection, separate from the caller's."""
    connection = await connect([nats_url], node="test-node", name="echo", connect_timeout=5)
    yield connection
    await connection.close()


@pytest.fixture
async def echo(server_bus: Bus, handlers: EchoHandlers) -> AsyncIterator[ServiceHost]:
    async with echo_host(server_bus, handlers) as host:
        yield host
