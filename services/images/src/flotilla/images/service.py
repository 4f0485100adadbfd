"""The images service's NATS endpoints: decode, call the core, convert."""

from __future__ import annotations

import dataclasses

from flotilla.common.bus import Context, ServiceHost
from flotilla.images import api
from flotilla.images.gc.collector import GarbageCollector

__all__ = ["ImagesService"]


class ImagesService:
    """Serves the collector on demand."""

    def __init__(self, collector: GarbageCollector) -> None:
        self.collector = collector

    def register(self, host: ServiceHost) -> None:
        """Add every images endpoint to ``host``."""
        host.unary(api.GC, self.gc)

    async def gc(self, req: api.Collect, _: Context) -> api.Collected:
        if not req.wait:
            self.collector.schedule()
            return api.Collected()
        collected = await self.collector.collection()
        return api.Collected(**dataclasses.asdict(collected))
