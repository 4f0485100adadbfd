"""The embedded nats-server on the bus: ``flotilla up`` answers discovery for it as ``nats``.

nats-server cannot say its pid or how often it was restarted, and without its system account it
does not answer ``$SRV`` at all; the supervisor that keeps it knows both. So the supervisor runs
a small ``ServiceHost`` named ``nats`` (discovery and node metrics only) whose metadata is the
server's: ``pid``, ``url``, ``restarts``; plus ``supervisor`` (the supervisor's pid) and
``service_restarts`` (``content=0,images=2,...``, every service it keeps). Its version is the
server's, and its start time is the running server's, so ``flotilla status`` shows one row for
NATS like any service's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from flotilla.cli.keeper import Keeper
from flotilla.common.bus import Bus, ServiceHost
from flotilla.common.natsserver import EmbeddedNats

__all__ = ["NATS", "NatsService", "parse_restarts"]

NATS: Final = "nats"


class NatsService:
    """Discovery for the embedded server, kept true across its restarts by :meth:`refresh`."""

    def __init__(self, bus: Bus, server: EmbeddedNats, keeper: Keeper) -> None:
        self.server = server
        self.keeper = keeper
        description = "the node's embedded nats-server, kept running by flotilla up"
        self.host = ServiceHost(bus, NATS, server.version or "?", description)
        self.refresh()

    def refresh(self) -> None:
        """Take the server's current pid and every unit's restart count into the metadata."""
        discovery = self.host.discovery
        pid = str(self.server.pid or "-")
        if discovery.metadata.get("pid") != pid:
            discovery.started = datetime.now(UTC).replace(tzinfo=None)
        restarts = {name: kept.restarts for name, kept in self.keeper.kept.items()}
        discovery.metadata.update(
            pid=pid,
            url=self.server.url,
            supervisor=str(os.getpid()),
            restarts=str(restarts.pop(NATS, 0)),
            service_restarts=",".join(f"{name}={count}" for name, count in restarts.items()),
        )

    async def start(self) -> None:
        """Answer discovery."""
        await self.host.start()

    async def stop(self) -> None:
        """Stop answering."""
        await self.host.stop(grace=1.0)


def parse_restarts(metadata: Mapping[str, str]) -> dict[str, str]:
    """``service_restarts`` of a ``nats`` answer as ``{service: count}``, with ``nats`` itself."""
    pairs = (item.partition("=") for item in metadata.get("service_restarts", "").split(","))
    counts = {name: count for name, _, count in pairs if name and count}
    if "restarts" in metadata:
        counts[NATS] = metadata["restarts"]
    return counts
