"""A service is callable the moment its host has started: no "no responders" to retry."""

import pytest

from flotilla.common.bus import Bus, connect

from .echo_service import ECHO, Echo, EchoHandlers, echo_host

ROUNDS = 1000


@pytest.mark.slow
@pytest.mark.load
async def test_a_fresh_subscription_answers_the_first_call(bus: Bus, server_bus: Bus) -> None:
    handlers = EchoHandlers()
    for round_ in range(ROUNDS):
        async with echo_host(server_bus, handlers):
            reply = await bus.call(ECHO, Echo(text=str(round_)), namespace="n", timeout=5)
        assert reply.text == f"{round_}@n"


@pytest.mark.slow
@pytest.mark.load
async def test_a_fresh_connection_answers_the_first_call(bus: Bus, nats_url: str) -> None:
    handlers = EchoHandlers()
    for round_ in range(ROUNDS // 4):
        server = await connect([nats_url], node="test-node", name="echo", connect_timeout=5)
        try:
            async with echo_host(server, handlers):
                reply = await bus.call(ECHO, Echo(text=str(round_)), namespace="n", timeout=5)
        finally:
            await server.close()
        assert reply.text == f"{round_}@n"
