"""The pull endpoint's side of the node: its content store, snapshotters and diff service.

A pull is served by the images service of the node that receives it; everything it writes
goes to that node's services (on the same node, the content ingest's file directly).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import msgspec

from flotilla.common.bus import Bus
from flotilla.content.proxy import ContentProxy
from flotilla.images.pull.progress import BlobProgress, Tracker
from flotilla.images.pull.puller import Unpacker
from flotilla.snapshots.proxy import DiffProxy, SnapshotterProxy

__all__ = ["NodeServices"]

_progress = msgspec.msgpack.Encoder()


class NodeServices:
    """This node's content, snapshots and diff services, as a pull uses them."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.node = bus.node
        self.content = ContentProxy(bus, node=bus.node)
        self._diff = DiffProxy(bus, node=bus.node)
        self._snapshotters: dict[str, SnapshotterProxy] = {}

    async def unpacker(self, snapshotter: str) -> Unpacker:
        """Where a pull unpacks into ``snapshotter`` (empty: the node's default).

        Raises:
            InvalidArgument: the node has not loaded it.
        """
        proxy = self._snapshotters.get(snapshotter)
        if proxy is None:
            proxy = await SnapshotterProxy.open(self._bus, snapshotter, node=self.node)
            self._snapshotters[snapshotter] = proxy
        return Unpacker(proxy, proxy.name, self._diff, self.node)

    @contextlib.asynccontextmanager
    async def reporting(self, subject: str) -> AsyncIterator[Tracker]:
        """A tracker publishing each report on ``subject`` (none: reports are dropped).

        Every report is on its way to the server when the block ends, before the caller's
        answer is: the caller sees each one before the answer.
        """
        if not subject:
            yield Tracker()
            return
        publish: Callable[[str, bytes], Coroutine[Any, Any, None]] = self._bus.nc.publish
        sending: set[asyncio.Task[None]] = set()

        def send(report: BlobProgress) -> None:
            task = asyncio.ensure_future(publish(subject, _progress.encode(report)))
            sending.add(task)
            task.add_done_callback(sending.discard)

        try:
            yield Tracker(send)
        finally:
            await asyncio.gather(*sending, return_exceptions=True)

    async def close(self) -> None:
        """Close the snapshotter proxies."""
        for proxy in self._snapshotters.values():
            await proxy.close()
