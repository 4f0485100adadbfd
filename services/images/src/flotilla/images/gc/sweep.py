"""The sweep's plan: per node, what the mark did not reach, in an order that can be removed.

Objects made or changed after the collection started are never swept: the mark could not
have seen what refers to them. Snapshots go children first (a snapshot with children cannot
be removed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flotilla.images.gc.inventory import Blob, Inventory, Snapshot
from flotilla.images.gc.mark import Marked

__all__ = ["Plan", "plan"]


@dataclass
class Plan:
    """What to delete on one node, in order."""

    blobs: list[Blob] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)


def plan(inventory: Inventory, marked: Marked, started: datetime) -> dict[str, Plan]:
    """Each node's unreached objects older than ``started``."""
    plans: dict[str, Plan] = {}
    for node in sorted(set(inventory.blobs) | set(inventory.snapshots)):
        blobs = [
            blob
            for blob in inventory.blobs.get(node, [])
            if (blob.namespace, blob.digest) not in marked.blobs and _settled(blob, started)
        ]
        held = inventory.snapshots.get(node, [])
        snapshots = [
            snapshot
            for snapshot in held
            if snapshot.ref not in marked.snapshots and _settled(snapshot, started)
        ]
        plans[node] = Plan(blobs, _children_first(snapshots, held))
    return plans


def _settled(found: Blob | Snapshot, started: datetime) -> bool:
    return found.created_at < started and found.updated_at < started


def _children_first(doomed: list[Snapshot], held: list[Snapshot]) -> list[Snapshot]:
    parents = {snapshot.ref: snapshot.parent for snapshot in held}

    def depth(snapshot: Snapshot) -> int:
        found, ref, seen = 0, snapshot.ref, set()
        while parents.get(ref) and ref not in seen:
            seen.add(ref)
            ref = ref._replace(key=parents[ref])
            found += 1
        return found

    return sorted(doomed, key=depth, reverse=True)
