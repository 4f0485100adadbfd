"""Asking the images service for a collection: the record stores' collector elsewhere.

Processes that delete records (the gateway, the CLI) open their
:class:`~flotilla.metadata.Metadata` with a :class:`CollectorClient`, so a delete schedules the
cluster's collection and a ``sync`` delete waits for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.images import api

__all__ = ["GC_TIMEOUT", "CollectorClient"]

log = logging.getLogger(__name__)

GC_TIMEOUT: Final = 600.0


class CollectorClient:
    """The cluster's collector, through any images service."""

    def __init__(self, bus: Bus, timeout: float = GC_TIMEOUT) -> None:
        self.bus = bus
        self.timeout = timeout
        self._asking: set[asyncio.Task[None]] = set()

    def schedule(self) -> None:
        """Ask for a collection soon, without waiting for the answer."""
        task = asyncio.create_task(self._schedule())
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _schedule(self) -> None:
        with contextlib.suppress(errdefs.ErrdefsError):  # no images service: nothing to do
            await self.bus.call(api.GC, api.Collect(wait=False))

    async def collect(self) -> None:
        """Run a collection and wait until it is done."""
        await self.collection()

    async def collection(self) -> api.Collected:
        """Run a collection and say what it removed.

        Raises:
            Unavailable: if no images service answers.
        """
        return await self.bus.call(api.GC, api.Collect(wait=True), timeout=self.timeout)
