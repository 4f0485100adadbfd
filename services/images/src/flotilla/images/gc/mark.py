"""The mark: everything reachable from the roots, across every node (pure but for blob reads).

Roots are images (their target), containers (their snapshot), unexpired leases (what they
hold) and objects labelled ``containerd.io/gc.root``. From a blob the mark follows its
``gc.ref`` labels on any node, and the children of a manifest or index; from a snapshot, its
parent and labels. A flat lease (``containerd.io/gc.flat``) keeps its resources only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from flotilla.images.gc.inventory import Inventory, LeaseHolding, Records
from flotilla.images.gc.refs import (
    MANIFEST_TYPES,
    BlobRef,
    SnapshotRef,
    children,
    is_root,
    label_refs,
)
from flotilla.metadata.leases import CONTENT, FLAT, SNAPSHOTS_PREFIX, expired

__all__ = ["BlobReader", "Marked", "mark"]

BlobReader = Callable[[BlobRef], Awaitable[bytes | None]]
"""Reads a manifest or index from a node that holds it (None: nowhere, or too large)."""

Ref = BlobRef | SnapshotRef


@dataclass
class Marked:
    """What the mark reached, and the leases that have expired."""

    blobs: set[tuple[str, str]] = field(default_factory=set)
    snapshots: set[SnapshotRef] = field(default_factory=set)
    expired_leases: list[tuple[str, str]] = field(default_factory=list)


async def mark(records: Records, inventory: Inventory, read: BlobReader, now: datetime) -> Marked:
    """Everything reachable from the roots in ``records`` and ``inventory``."""
    walk = _Walk(inventory, read)
    marked = Marked()
    for namespace, image in records.images:
        target = image.target
        await walk.visit([BlobRef(namespace, target.digest, target.media_type)])
        await walk.visit(label_refs(namespace, image.labels))
    for namespace, container in records.containers:
        if container.snapshot_key:
            snapshot = SnapshotRef(namespace, container.snapshotter, container.snapshot_key)
            await walk.visit([snapshot])
        await walk.visit(label_refs(namespace, container.labels))
    for holding in records.leases:
        if expired(holding.lease, now):
            marked.expired_leases.append((holding.namespace, holding.lease.id))
            continue
        await walk.visit(_held(holding), follow=FLAT not in holding.lease.labels)
    await walk.visit(_labelled_roots(inventory))
    marked.blobs = {(ref.namespace, ref.digest) for ref in walk.blobs}
    marked.snapshots = set(walk.snapshots)
    return marked


def _held(holding: LeaseHolding) -> list[Ref]:
    held: list[Ref] = []
    for resource in holding.resources:
        if resource.type == CONTENT:
            held.append(BlobRef(holding.namespace, resource.id))
        elif resource.type.startswith(SNAPSHOTS_PREFIX):
            snapshotter = resource.type[len(SNAPSHOTS_PREFIX) :]
            held.append(SnapshotRef(holding.namespace, snapshotter, resource.id))
    return held


def _labelled_roots(inventory: Inventory) -> list[Ref]:
    roots: list[Ref] = [
        blob.ref for blobs in inventory.blobs.values() for blob in blobs if is_root(blob.labels)
    ]
    roots += [
        snapshot.ref
        for snapshots in inventory.snapshots.values()
        for snapshot in snapshots
        if is_root(snapshot.labels)
    ]
    return roots


class _Walk:
    """The marked set, grown one reference at a time."""

    def __init__(self, inventory: Inventory, read: BlobReader) -> None:
        self.blobs: set[BlobRef] = set()
        self.snapshots: set[SnapshotRef] = set()
        self._followed: set[Ref] = set()
        self._parsed: set[BlobRef] = set()
        self._blob_labels = inventory.blob_labels()
        self._snapshots = inventory.snapshot_index()
        self._read = read

    async def visit(self, refs: Iterable[Ref], *, follow: bool = True) -> None:
        """Mark ``refs`` and, when ``follow``, everything they reach."""
        pending = list(refs)
        while pending:
            ref = pending.pop()
            if isinstance(ref, BlobRef):
                pending += await self._blob(ref, follow)
            else:
                pending += self._snapshot(ref, follow)

    async def _blob(self, ref: BlobRef, follow: bool) -> list[Ref]:
        plain = BlobRef(ref.namespace, ref.digest)
        self.blobs.add(plain)
        if not follow:
            return []
        found: list[Ref] = []
        if plain not in self._followed:
            self._followed.add(plain)
            for labels in self._blob_labels.get(plain, []):
                found += label_refs(ref.namespace, labels)
        if ref.media_type in MANIFEST_TYPES and plain not in self._parsed:
            self._parsed.add(plain)
            blob = await self._read(plain)
            if blob is not None:
                found += children(ref.namespace, blob)
        return found

    def _snapshot(self, ref: SnapshotRef, follow: bool) -> list[Ref]:
        # A snapshot needs its parents whatever keeps it, flat leases included.
        first = ref not in self.snapshots
        self.snapshots.add(ref)
        found: list[Ref] = []
        for snapshot in self._snapshots.get(ref, []) if first else []:
            if snapshot.parent:
                found.append(SnapshotRef(ref.namespace, ref.snapshotter, snapshot.parent))
        if follow and ref not in self._followed:
            self._followed.add(ref)
            for snapshot in self._snapshots.get(ref, []):
                found += label_refs(ref.namespace, snapshot.labels)
        return found
