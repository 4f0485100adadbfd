"""The collector's nodes over the bus: each node's content and snapshots services.

Nodes are found with the services' discovery (``$SRV.PING``): every node whose content or
snapshots service answers within :data:`DISCOVERY_WAIT` is inventoried and swept. A node that
does not answer is neither swept nor read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final

from nats.micro.service import ServiceVerb

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.common.bus.discovery import SERVICE_PREFIX, discover
from flotilla.content.proxy import ContentProxy
from flotilla.images.gc.inventory import Blob, Snapshot
from flotilla.snapshots.proxy import SnapshotterProxy, loaded_snapshotters

__all__ = ["BusNode", "BusNodes"]

DISCOVERY_WAIT: Final = 1.0
_CONTENT: Final = SERVICE_PREFIX + "content"
_SNAPSHOTS: Final = SERVICE_PREFIX + "snapshots"


class BusNode:
    """One node's services, as the collector uses them."""

    def __init__(self, bus: Bus, name: str, *, content: bool, snapshots: bool) -> None:
        self.bus = bus
        self._name = name
        self.content = ContentProxy(bus, name) if content else None
        self.has_snapshots = snapshots
        self._snapshotters: list[str] | None = None

    @property
    def name(self) -> str:
        """The node's name."""
        return self._name

    async def namespaces(self) -> set[str]:
        """The namespaces the node holds blobs (or ingests) and snapshots in."""
        return await self.blob_namespaces() | await self.snapshot_namespaces()

    async def blob_namespaces(self) -> set[str]:
        """The namespaces with blobs or ingests in the node's content store."""
        if self.content is None:
            return set()
        return set(await self.content.namespaces(ingests=True))

    async def snapshot_namespaces(self) -> set[str]:
        """The namespaces with snapshots in any of the node's snapshotters."""
        found: set[str] = set()
        for name in await self._loaded():
            found.update(await SnapshotterProxy(self.bus, name, self._name).namespaces())
        return found

    async def blobs(self, namespace: str) -> list[Blob]:
        """Every committed blob of ``namespace`` on the node."""
        if self.content is None:
            return []
        return [
            Blob(namespace, info.digest, info.size, info.labels, info.created_at, info.updated_at)
            async for info in self.content.walk(namespace)
        ]

    async def snapshots(self, namespace: str) -> list[Snapshot]:
        """Every snapshot of ``namespace`` in each of the node's snapshotters."""
        found: list[Snapshot] = []
        for name in await self._loaded():
            proxy = SnapshotterProxy(self.bus, name, self._name)
            found += [
                Snapshot(
                    namespace,
                    name,
                    info.name,
                    info.parent,
                    info.labels,
                    info.created_at,
                    info.updated_at,
                )
                async for info in proxy.walk(namespace)
            ]
        return found

    async def _loaded(self) -> list[str]:
        if not self.has_snapshots:
            return []
        if self._snapshotters is None:
            reply = await loaded_snapshotters(self.bus, self._name)
            self._snapshotters = [loaded.name for loaded in reply.snapshotters]
        return self._snapshotters

    async def read(self, namespace: str, digest: str, limit: int) -> bytes | None:
        """The blob, when the node has it and it is at most ``limit`` bytes."""
        if self.content is None:
            return None
        try:
            reader = await self.content.reader_at(namespace, digest)
        except errdefs.NotFound:
            return None
        async with reader:
            if reader.size > limit:
                return None
            return await reader.read_at(0, reader.size)

    async def delete_blob(self, blob: Blob) -> None:
        """Delete the blob from the node's content store."""
        if self.content is not None:
            with contextlib.suppress(errdefs.NotFound):
                await self.content.delete(blob.namespace, blob.digest)

    async def remove_snapshot(self, snapshot: Snapshot) -> None:
        """Remove the snapshot from the node's snapshotter."""
        proxy = SnapshotterProxy(self.bus, snapshot.snapshotter, self._name)
        with contextlib.suppress(errdefs.NotFound):
            await proxy.remove(snapshot.namespace, snapshot.key)

    async def cleanup(self) -> None:
        """Let each of the node's snapshotters remove what no snapshot owns."""
        for name in await self._loaded():
            await SnapshotterProxy(self.bus, name, self._name).cleanup()


class BusNodes:
    """The nodes whose content or snapshots services answer discovery."""

    def __init__(self, bus: Bus, wait: float = DISCOVERY_WAIT) -> None:
        self.bus = bus
        self.wait = wait

    async def nodes(self) -> Sequence[BusNode]:
        """Every node that answered, with what it runs."""
        answers = await discover(self.bus, ServiceVerb.PING, wait=self.wait)
        running: dict[str, set[str]] = {}
        for answer in answers:
            node = str((answer.get("metadata") or {}).get("node", ""))
            if node:
                running.setdefault(node, set()).add(str(answer.get("name", "")))
        return [
            BusNode(self.bus, node, content=_CONTENT in names, snapshots=_SNAPSHOTS in names)
            for node, names in sorted(running.items())
            if names & {_CONTENT, _SNAPSHOTS}
        ]
