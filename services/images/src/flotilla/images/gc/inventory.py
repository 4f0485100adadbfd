"""What the collector marks over: every record, and every node's blobs and snapshots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from flotilla.images.gc.refs import BlobRef, SnapshotRef
from flotilla.metadata import Container, Image, Lease, Resource

__all__ = ["Blob", "Inventory", "LeaseHolding", "Records", "Snapshot"]


@dataclass(frozen=True)
class Blob:
    """One node's blob."""

    namespace: str
    digest: str
    size: int
    labels: Mapping[str, str]
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> BlobRef:
        """How references name it."""
        return BlobRef(self.namespace, self.digest)


@dataclass(frozen=True)
class Snapshot:
    """One node's snapshot."""

    namespace: str
    snapshotter: str
    key: str
    parent: str
    labels: Mapping[str, str]
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> SnapshotRef:
        """How references name it."""
        return SnapshotRef(self.namespace, self.snapshotter, self.key)


@dataclass(frozen=True)
class LeaseHolding:
    """A lease and what it holds."""

    namespace: str
    lease: Lease
    resources: tuple[Resource, ...]


@dataclass
class Records:
    """Every record the mark starts from, with its namespace."""

    images: list[tuple[str, Image]] = field(default_factory=list)
    containers: list[tuple[str, Container]] = field(default_factory=list)
    leases: list[LeaseHolding] = field(default_factory=list)


@dataclass
class Inventory:
    """Every node's blobs and snapshots, by node name."""

    blobs: dict[str, list[Blob]] = field(default_factory=dict)
    snapshots: dict[str, list[Snapshot]] = field(default_factory=dict)

    def blob_labels(self) -> dict[BlobRef, list[Mapping[str, str]]]:
        """Each blob's labels on every node that holds it."""
        return _labels_by_ref(blob for blobs in self.blobs.values() for blob in blobs)

    def snapshot_index(self) -> dict[SnapshotRef, list[Snapshot]]:
        """Each snapshot as every node that holds it records it."""
        index: dict[SnapshotRef, list[Snapshot]] = defaultdict(list)
        for snapshots in self.snapshots.values():
            for snapshot in snapshots:
                index[snapshot.ref].append(snapshot)
        return index


def _labels_by_ref(blobs: Iterable[Blob]) -> dict[BlobRef, list[Mapping[str, str]]]:
    index: dict[BlobRef, list[Mapping[str, str]]] = defaultdict(list)
    for blob in blobs:
        index[blob.ref].append(blob.labels)
    return index
