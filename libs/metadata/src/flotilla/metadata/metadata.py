"""The cluster's records in one object: open it on a NATS connection and use its stores.

Every process that reads or writes records (the images service, the gateway, the CLI, the
tasks service) opens its own :class:`Metadata`; there is no records server, because every
write is a compare-and-set on JetStream and needs none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from nats.aio.client import Client

from flotilla.common.events import EventPublisher
from flotilla.common.events.jetstream import JetStreamPublisher, ensure_events_stream
from flotilla.metadata.bucket import Bucket
from flotilla.metadata.containers import ContainerStore
from flotilla.metadata.images import ImageStore
from flotilla.metadata.jetstream import open_bucket
from flotilla.metadata.leases import LeaseStore
from flotilla.metadata.namespaces import NamespaceStore
from flotilla.metadata.ports import Collector, Holder, NoCollector

__all__ = ["BUCKETS", "Buckets", "Metadata"]

NAMESPACES: Final = "flotilla_namespaces"
IMAGES: Final = "flotilla_images"
CONTAINERS: Final = "flotilla_containers"
LEASES: Final = "flotilla_leases"
BUCKETS: Final = (NAMESPACES, IMAGES, CONTAINERS, LEASES)


@dataclass(frozen=True)
class Buckets:
    """The four record buckets."""

    namespaces: Bucket
    images: Bucket
    containers: Bucket
    leases: Bucket

    @classmethod
    async def open(cls, nc: Client, *, replicas: int = 1) -> Buckets:
        """Open (and make, if missing) every bucket with ``replicas`` copies.

        Raises:
            Unavailable: if JetStream refuses one.
        """
        opened = await asyncio.gather(
            *(open_bucket(nc, name, replicas=replicas) for name in BUCKETS)
        )
        return cls(*opened)

    async def revision(self) -> tuple[int, ...]:
        """Every bucket's latest revision: equal tuples mean nothing was written between."""
        found = await asyncio.gather(
            *(
                bucket.revision()
                for bucket in (self.namespaces, self.images, self.containers, self.leases)
            )
        )
        return tuple(found)


class Metadata:
    """Namespaces, images, containers and leases.

    Args:
        buckets: where the records are kept.
        publisher: where their events go.
        collector: told after deletes (default: nobody; the images service's collector
            through :class:`flotilla.images.gc.client.CollectorClient` in a deployment).
    """

    def __init__(
        self,
        buckets: Buckets,
        publisher: EventPublisher,
        collector: Collector | None = None,
    ) -> None:
        collector = collector or NoCollector()
        self.buckets = buckets
        self.namespaces = NamespaceStore(buckets.namespaces, publisher)
        ensure = self.namespaces.ensure
        self.images = ImageStore(buckets.images, ensure, publisher, collector)
        self.containers = ContainerStore(buckets.containers, ensure, publisher, collector)
        self.leases = LeaseStore(buckets.leases, ensure, collector)
        self.namespaces.kinds = [
            ("images", self.images.records),
            ("containers", self.containers.records),
            ("leases", self.leases),
        ]

    @classmethod
    async def open(
        cls,
        nc: Client,
        *,
        replicas: int = 1,
        collector: Collector | None = None,
        holders: Mapping[str, Holder] | None = None,
    ) -> Metadata:
        """The records on ``nc``'s JetStream, with events on its events stream.

        Args:
            nc: a connected client.
            replicas: copies of each bucket when it is made (3 in a cluster).
            collector: told after deletes.
            holders: who else holds a namespace's objects (``blobs``, ``snapshots``), asked
                before a namespace is deleted.

        Raises:
            Unavailable: if JetStream refuses a bucket or the events stream.
        """
        await ensure_events_stream(nc)
        metadata = cls(await Buckets.open(nc, replicas=replicas), JetStreamPublisher(nc), collector)
        metadata.namespaces.kinds.extend((holders or {}).items())
        return metadata
