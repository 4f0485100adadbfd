"""Leases: what keeps in-flight work from the collector (containerd's Leases API).

A lease is ``<namespace>.<id>`` in ``flotilla_leases``; each resource it holds is a key of its
own below it, ``<namespace>.<id>.<type>.<resource id>``, so adding resources never contends on
the lease's record. A lease whose ``containerd.io/gc.expire`` time (RFC 3339) has passed no
longer protects anything, and the collector deletes it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Final

from flotilla.common import digests, errdefs, filters, labels, namespaces
from flotilla.metadata import keys
from flotilla.metadata.bucket import Bucket
from flotilla.metadata.ports import Collector
from flotilla.metadata.records import Codec, Lease, Resource
from flotilla.metadata.store import Ensure, RecordStore

__all__ = ["EXPIRE", "FLAT", "LeaseStore", "expired"]

EXPIRE: Final = "containerd.io/gc.expire"
FLAT: Final = "containerd.io/gc.flat"
"""A lease with this label protects its resources only, not what they reference."""

CONTENT: Final = "content"
INGESTS: Final = "ingests"
SNAPSHOTS_PREFIX: Final = "snapshots/"


class LeaseStore:
    """Leases and their resources, by namespace.

    Args:
        bucket: the leases' bucket.
        ensure: makes a namespace exist before its first record.
        collector: told after a delete.
    """

    def __init__(self, bucket: Bucket, ensure: Ensure, collector: Collector) -> None:
        self.records = RecordStore(bucket, Lease, "lease", ensure)
        self.bucket = bucket
        self._collector = collector
        self._resources = Codec(Resource)

    async def create(
        self,
        namespace: str,
        lease_id: str,
        labels_: dict[str, str] | None = None,
    ) -> Lease:
        """A new lease.

        Raises:
            InvalidArgument: on an invalid id or label.
            AlreadyExists: if the id is taken.
        """
        lease = Lease(
            id=namespaces.identifier(lease_id, "lease id"),
            labels=labels.validate(labels_),
            created_at=datetime.now(UTC),
        )
        await self.records.insert(namespace, lease_id, lease)
        return lease

    async def get(self, namespace: str, lease_id: str) -> Lease:
        """The lease ``id``.

        Raises:
            NotFound: if there is none.
        """
        lease, _ = await self.records.read(namespace, lease_id)
        return lease

    async def list(self, namespace: str, filters_: Sequence[str] = ()) -> AsyncIterator[Lease]:
        """The leases matching any of ``filters_``."""
        wanted = filters.parse_all(filters_)
        async for lease in self.records.scan(namespace):
            if wanted.match(_adaptor(lease)):
                yield lease

    async def delete(self, namespace: str, lease_id: str, *, sync: bool = False) -> None:
        """Delete the lease and its resources; with ``sync``, return after a collection.

        Raises:
            NotFound: if there is no such lease.
        """
        await self.remove(namespace, lease_id)
        if sync:
            await self._collector.collect()
        else:
            self._collector.schedule()

    async def remove(
        self, namespace: str, lease_id: str, held: Sequence[Resource] | None = None
    ) -> None:
        """Delete the lease and its resources without telling the collector.

        The collector's own way to drop an expired lease, and a pull's once its image is
        recorded.

        Args:
            namespace: the lease's namespace.
            lease_id: the lease.
            held: every resource the lease holds, when the caller knows them (saves listing
                them).

        Raises:
            NotFound: if there is no such lease.
        """
        await self.records.remove(namespace, lease_id)
        if held is None:
            pattern = self._resource_pattern(namespace, lease_id)
            found = [entry.key async for entry in self.bucket.entries(pattern)]
        else:
            found = [keys.join(namespace, lease_id, r.type, r.id) for r in held]
        await asyncio.gather(*(self.bucket.delete(key) for key in found))

    async def holdings(self) -> builtins.list[tuple[str, Lease, tuple[Resource, ...]]]:
        """Every lease in every namespace, with its namespace and what it holds."""
        leases: dict[tuple[str, str], Lease] = {}
        held: dict[tuple[str, str], builtins.list[Resource]] = {}
        async for entry in self.bucket.entries(">"):
            names = keys.split(entry.key)
            if len(names) == 2:
                leases[(names[0], names[1])] = self.records.codec.decode(entry.value)
            elif len(names) == 4:
                held.setdefault((names[0], names[1]), []).append(
                    self._resources.decode(entry.value)
                )
        return [
            (namespace, lease, tuple(held.get((namespace, lease_id), [])))
            for (namespace, lease_id), lease in leases.items()
        ]

    async def add_resource(self, namespace: str, lease_id: str, resource: Resource) -> None:
        """Make the lease hold ``resource`` (holding it twice is holding it once).

        Raises:
            NotFound: if there is no such lease.
            InvalidArgument: on an unknown resource type or a malformed id.
        """
        _check(resource)
        await self.records.read(namespace, lease_id)
        key = keys.join(namespace, lease_id, resource.type, resource.id)
        with contextlib.suppress(errdefs.AlreadyExists):  # held already
            await self.bucket.create(key, self._resources.encode(resource))

    async def delete_resource(
        self,
        namespace: str,
        lease_id: str,
        resource: Resource,
    ) -> None:
        """Stop holding ``resource``.

        Raises:
            NotFound: if there is no such lease.
        """
        await self.records.read(namespace, lease_id)
        await self.bucket.delete(keys.join(namespace, lease_id, resource.type, resource.id))

    async def resources(self, namespace: str, lease_id: str) -> builtins.list[Resource]:
        """What the lease holds.

        Raises:
            NotFound: if there is no such lease.
        """
        await self.records.read(namespace, lease_id)
        pattern = self._resource_pattern(namespace, lease_id)
        return [self._resources.decode(entry.value) async for entry in self.bucket.entries(pattern)]

    def _resource_pattern(self, namespace: str, lease_id: str) -> str:
        return keys.join(namespaces.validate(namespace), lease_id) + ".*.*"

    async def holds_any(self, namespace: str) -> bool:
        """Whether ``namespace`` has a lease."""
        return await self.records.holds_any(namespace)


def expired(lease: Lease, now: datetime) -> bool:
    """Whether the lease's ``containerd.io/gc.expire`` time has passed (unparsable: never)."""
    value = lease.labels.get(EXPIRE)
    if not value:
        return False
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment <= now


def _check(resource: Resource) -> None:
    if resource.type == CONTENT:
        digests.validate(resource.id)
    elif resource.type == INGESTS or (
        resource.type.startswith(SNAPSHOTS_PREFIX) and len(resource.type) > len(SNAPSHOTS_PREFIX)
    ):
        if not resource.id:
            raise errdefs.InvalidArgument(f"{resource.type} resource id must not be empty")
    else:
        raise errdefs.InvalidArgument(f"unsupported resource type {resource.type!r}")


def _adaptor(lease: Lease) -> filters.Adaptor:
    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if path[0] == "id":
            return lease.id
        if path[0] == "labels" and len(path) > 1:
            return lease.labels.get(".".join(path[1:]))
        return None

    return field
