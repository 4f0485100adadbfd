"""What the collector needs from the nodes whose objects it sweeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from flotilla.images.gc.inventory import Blob, Snapshot

__all__ = ["Node", "Nodes"]


class Node(Protocol):
    """One node's content and snapshots."""

    @property
    def name(self) -> str:
        """The node's name."""
        ...

    async def namespaces(self) -> set[str]:
        """The namespaces the node holds blobs (or ingests) and snapshots in."""
        ...

    async def blobs(self, namespace: str) -> list[Blob]:
        """Every committed blob of ``namespace`` on the node."""
        ...

    async def snapshots(self, namespace: str) -> list[Snapshot]:
        """Every snapshot of ``namespace`` on the node, in every snapshotter."""
        ...

    async def read(self, namespace: str, digest: str, limit: int) -> bytes | None:
        """The blob's bytes, or None when it is missing or larger than ``limit``."""
        ...

    async def delete_blob(self, blob: Blob) -> None:
        """Delete the blob (gone already is fine)."""
        ...

    async def remove_snapshot(self, snapshot: Snapshot) -> None:
        """Remove the snapshot (gone already is fine)."""
        ...

    async def cleanup(self) -> None:
        """Let every snapshotter remove what no snapshot owns."""
        ...


class Nodes(Protocol):
    """The nodes that answer now."""

    async def nodes(self) -> Sequence[Node]:
        """Every node with a content or snapshots service."""
        ...
