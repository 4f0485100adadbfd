"""The records' storage port: one key-value bucket whose every write is a compare-and-set.

Stores (:mod:`flotilla.metadata.store`) see only this; :mod:`flotilla.metadata.jetstream`
implements it on a JetStream KV bucket. A revision is the bucket's sequence number of a key's
latest write, so "update if the revision is still N" is how two writers never lose a write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

__all__ = ["Bucket", "Entry"]


class Entry(NamedTuple):
    """A key's latest value and the revision that wrote it."""

    key: str
    value: bytes
    revision: int


class Bucket(Protocol):
    """One KV bucket. Keys are subject tails built by :mod:`flotilla.metadata.keys`."""

    @property
    def name(self) -> str:
        """The bucket's name."""
        ...

    async def get(self, key: str) -> Entry | None:
        """The key's entry, or None when it was never written or is deleted."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Write a key that does not exist; its revision.

        Raises:
            AlreadyExists: if the key exists.
        """
        ...

    async def update(self, key: str, value: bytes, revision: int) -> int:
        """Replace the key's value if its revision is still ``revision``; the new revision.

        Raises:
            Conflict: if another write came first (or the key is gone).
        """
        ...

    async def delete(self, key: str, revision: int = 0) -> None:
        """Delete the key; with a ``revision``, only if it is still that one.

        Raises:
            Conflict: if another write came first.
        """
        ...

    def entries(self, pattern: str) -> AsyncIterator[Entry]:
        """Every live key matching ``pattern`` (``ns.*``, ``ns.lease.>``), unsorted."""
        ...

    async def revision(self) -> int:
        """The bucket's latest revision: unchanged means nothing was written since."""
        ...
