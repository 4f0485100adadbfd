"""Short-lived leases that keep what a pull or an import writes from the collector.

containerd gives every pull a lease (``containerd.io/gc.expire`` a day away, so a crashed
pull's leftovers are collected eventually) and deletes it once the image record exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Final

from flotilla.common import errdefs
from flotilla.metadata import Metadata
from flotilla.metadata.leases import EXPIRE
from flotilla.metadata.records import Resource

__all__ = ["LEASE_TTL", "Holder", "temporary_lease"]

LEASE_TTL: Final = timedelta(hours=24)


class Holder:
    """Adds resources to one lease."""

    def __init__(self, metadata: Metadata, namespace: str, lease: str) -> None:
        self._metadata = metadata
        self.namespace = namespace
        self.lease = lease
        self._adding: dict[Resource, asyncio.Future[None]] = {}

    async def blob(self, digest: str) -> None:
        """Hold the blob ``digest``."""
        await self.resource("content", digest)

    async def resource(self, kind: str, ident: str) -> None:
        """Hold a resource (``content``, ``snapshots/<snapshotter>``)."""
        resource = Resource(type=kind, id=ident)
        adding = self._adding.get(resource)
        if adding is None:  # held once, however many blobs or manifests name it
            leases = self._metadata.leases
            adding = asyncio.ensure_future(
                leases.add_resource(self.namespace, self.lease, resource)
            )
            self._adding[resource] = adding
        await asyncio.shield(adding)

    @property
    def held(self) -> list[Resource]:
        """What was added to the lease."""
        return [
            r
            for r, added in self._adding.items()
            if added.done() and not added.cancelled() and added.exception() is None
        ]


@contextlib.asynccontextmanager
async def temporary_lease(metadata: Metadata, namespace: str, what: str) -> AsyncIterator[Holder]:
    """A lease named ``<what>-<random>`` for the ``async with`` block, removed after it."""
    expire = (datetime.now(UTC) + LEASE_TTL).strftime("%Y-%m-%dT%H:%M:%SZ")
    lease = f"{what}-{secrets.token_hex(8)}"
    await metadata.leases.create(namespace, lease, {EXPIRE: expire})
    holder = Holder(metadata, namespace, lease)
    try:
        yield holder
    finally:
        with contextlib.suppress(errdefs.ErrdefsError):
            await asyncio.shield(metadata.leases.remove(namespace, lease, holder.held))
