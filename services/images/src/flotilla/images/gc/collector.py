"""A collection end to end, one at a time across the cluster, and scheduling after deletes.

1. Take the cluster lock; note the time and every record bucket's revision.
2. Read every record and every node's blobs and snapshots; mark.
3. If a bucket changed meanwhile, read the records and mark again (the inventory stays:
   objects newer than step 1 are never swept), up to a few rounds; give up otherwise.
4. Delete expired leases; on each node delete the unreached blobs and snapshots (children
   first); then each node's snapshotters clean up. Every step checks the lock is still ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeVar

from flotilla.common import errdefs
from flotilla.images.gc.inventory import Inventory, LeaseHolding, Records
from flotilla.images.gc.lock import ClusterLock, Held
from flotilla.images.gc.mark import BlobReader, Marked, mark
from flotilla.images.gc.ports import Node, Nodes
from flotilla.images.gc.refs import MAX_MANIFEST, BlobRef
from flotilla.images.gc.sweep import Plan, plan
from flotilla.metadata import Metadata

__all__ = ["Collected", "GarbageCollector"]

log = logging.getLogger(__name__)

_MARK_ROUNDS: Final = 3

T = TypeVar("T")


@dataclass(frozen=True)
class Collected:
    """What one collection removed."""

    blobs: int = 0
    snapshots: int = 0
    leases: int = 0
    marks: int = 0
    seconds: float = 0.0
    skipped: bool = False
    """The records kept changing during every mark: nothing was swept."""


class GarbageCollector:
    """The cluster's collector; a :class:`~flotilla.metadata.Collector` for the record stores.

    Args:
        metadata: the records (roots) and buckets.
        nodes: whose objects are swept.
        lock: held for the whole collection.
        debounce: seconds without a new delete before a scheduled collection runs.
    """

    def __init__(
        self, metadata: Metadata, nodes: Nodes, lock: ClusterLock, debounce: float = 1.0
    ) -> None:
        self.metadata = metadata
        self.nodes = nodes
        self.lock = lock
        self.debounce = debounce
        self._wanted = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self.last: Collected | None = None

    def schedule(self) -> None:
        """Collect once deletes have paused for :attr:`debounce` seconds."""
        self._wanted.set()
        if self._loop is None:
            self._loop = asyncio.create_task(self._scheduled())

    async def close(self) -> None:
        """Stop the scheduled collections (a running one is cancelled)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _scheduled(self) -> None:
        while True:
            await self._wanted.wait()
            while self._wanted.is_set():  # wait for a quiet spell
                self._wanted.clear()
                await asyncio.sleep(self.debounce)
            try:
                await self.collect()
            except errdefs.ErrdefsError as error:
                log.warning("scheduled collection failed", extra={"error": str(error)})
            except Exception as error:  # the loop must outlive any one collection
                log.exception("scheduled collection failed", extra={"error": type(error).__name__})

    async def collect(self) -> None:
        """Run a collection now (after the one running anywhere in the cluster)."""
        await self.collection()

    async def collection(self) -> Collected:
        """Run a collection now and say what it removed."""
        begun = time.monotonic()
        async with self.lock.hold() as held:
            result = await self._collect(held)
        result = dataclasses.replace(result, seconds=time.monotonic() - begun)
        self.last = result
        log.info("garbage collected", extra=result.__dict__)
        return result

    async def _collect(self, held: Held) -> Collected:
        started = datetime.now(UTC)
        before = await self.metadata.buckets.revision()
        nodes = list(await self.nodes.nodes())
        records = await _records(self.metadata)
        inventory = await _inventory(nodes, await self._namespaces(records, nodes))
        read = _reader(nodes, inventory)  # one for every mark: blobs never change
        marks = 0
        while True:
            marks += 1
            marked = await mark(records, inventory, read, started)
            after = await self.metadata.buckets.revision()
            if after == before:
                break
            if marks == _MARK_ROUNDS:
                log.warning("records kept changing during the mark: nothing swept")
                return Collected(marks=marks, skipped=True)
            before, records = after, await _records(self.metadata)
        held.check("garbage collection")
        return await self._sweep(held, nodes, marked, plan(inventory, marked, started), marks)

    async def _namespaces(self, records: Records, nodes: list[Node]) -> list[str]:
        names = {namespace.name async for namespace in self.metadata.namespaces.list()}
        for node in nodes:
            names.update(await node.namespaces())
        names.update(namespace for namespace, _ in records.images)
        names.update(namespace for namespace, _ in records.containers)
        names.update(holding.namespace for holding in records.leases)
        return sorted(names)

    async def _sweep(
        self, held: Held, nodes: list[Node], marked: Marked, plans: dict[str, Plan], marks: int
    ) -> Collected:
        leases = 0
        for namespace, lease_id in marked.expired_leases:
            with contextlib.suppress(errdefs.NotFound):
                await self.metadata.leases.remove(namespace, lease_id)
                leases += 1
        blobs = snapshots = 0
        for node in nodes:
            held.check("garbage collection")
            swept = plans.get(node.name, Plan())
            blobs += await _each(node.delete_blob, swept.blobs)
            snapshots += await _each(node.remove_snapshot, swept.snapshots)
            await _quietly(node.cleanup())
        return Collected(blobs=blobs, snapshots=snapshots, leases=leases, marks=marks)


async def _each(remove: Callable[[T], Awaitable[None]], doomed: Sequence[T]) -> int:
    removed = 0
    for found in doomed:
        if await _quietly(remove(found)):
            removed += 1
    return removed


async def _quietly(step: Awaitable[None]) -> bool:
    """Run a sweep step; a failure is logged and the sweep goes on."""
    try:
        await step
    except errdefs.ErrdefsError as error:
        log.warning("sweep step failed", extra={"error": str(error)})
        return False
    return True


async def _records(metadata: Metadata) -> Records:
    images = [found async for found in metadata.images.records.everything()]
    containers = [found async for found in metadata.containers.records.everything()]
    leases = [LeaseHolding(*held) for held in await metadata.leases.holdings()]
    return Records(images, containers, leases)


async def _inventory(nodes: list[Node], namespaces: list[str]) -> Inventory:
    inventory = Inventory()
    for node in nodes:
        inventory.blobs[node.name] = [b for ns in namespaces for b in await node.blobs(ns)]
        inventory.snapshots[node.name] = [s for ns in namespaces for s in await node.snapshots(ns)]
    return inventory


def _reader(nodes: list[Node], inventory: Inventory) -> BlobReader:
    """Reads each manifest or index once, from a node that holds it."""
    holders = {blob.ref: node for node in nodes for blob in inventory.blobs.get(node.name, [])}
    read: dict[BlobRef, bytes | None] = {}

    async def cached(ref: BlobRef) -> bytes | None:
        if ref not in read:
            holder = holders.get(ref)
            read[ref] = None
            if holder is not None:
                read[ref] = await holder.read(ref.namespace, ref.digest, MAX_MANIFEST)
        return read[ref]

    return cached
