"""pytest fixtures shared by every test tier: a real nats-server, and a connected bus.

Enable them in a ``conftest.py`` with ``pytest_plugins = ["flotilla.common.testing"]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common.bus import Bus, connect
from flotilla.common.natsserver import EmbeddedNats

__all__ = ["bus", "nats_server", "nats_url"]


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A real nats-server on a free loopback port, JetStream in a temp dir."""
    async with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    """The URL of the test's nats-server."""
    return nats_server.url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    """A bus connection as node ``test-node``."""
    connection = await connect([nats_url], node="test-node", name="pytest", connect_timeout=5)
    yield connection
    await connection.close()
