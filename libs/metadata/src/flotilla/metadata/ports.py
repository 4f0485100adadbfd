"""What the record stores need from the rest of Flotilla, as small protocols.

- :class:`Holder`: something outside the buckets that may still hold a namespace's objects
  (every node's blobs, snapshots), asked before a namespace is deleted.
- :class:`Collector`: the garbage collector, told after a delete.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Collector", "Holder", "NoCollector"]


class Holder(Protocol):
    """Holds objects of some kind in namespaces."""

    async def holds_any(self, namespace: str) -> bool:
        """Whether the namespace still has objects here."""
        ...


class Collector(Protocol):
    """Removes what no record references any more."""

    def schedule(self) -> None:
        """Ask for a collection soon; returns at once (collections after deletes are debounced)."""
        ...

    async def collect(self) -> None:
        """Run a collection now and return when it is done."""
        ...


class NoCollector:
    """A :class:`Collector` that does nothing: nothing is ever collected."""

    def schedule(self) -> None:
        """Nothing to schedule."""

    async def collect(self) -> None:
        """Nothing to collect."""
