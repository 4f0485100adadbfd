"""What every namespaced record store shares: keys, codecs, compare-and-set, not-found errors.

A record's key is ``<namespace>.<name>`` (both escaped). Reading a record returns it with its
revision; writing it back names that revision, so a write based on a stale read is refused
(:class:`~flotilla.common.errdefs.Conflict`) and :meth:`RecordStore.change` reads again and
re-applies the change until it lands: racing writers never lose a write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, Generic, TypeVar

from flotilla.common import errdefs, filters, namespaces
from flotilla.common.events import EventPublisher
from flotilla.metadata import keys
from flotilla.metadata.bucket import Bucket
from flotilla.metadata.ports import Collector
from flotilla.metadata.records import Codec

__all__ = ["Catalog", "Ensure", "RecordStore", "change_entry"]

T = TypeVar("T")

Ensure = Callable[[str], Awaitable[None]]
"""Makes sure a namespace exists before a record is written in it."""

_MAX_ATTEMPTS: Final = 64


async def change_entry(
    bucket: Bucket,
    key: str,
    codec: Codec[T],
    apply: Callable[[T], T],
    missing: Callable[[], errdefs.ErrdefsError],
    what: str,
) -> T:
    """Apply ``apply`` to the key's latest record and store the result, again while others win.

    ``apply`` must be a pure function of the record it is given.

    Raises:
        NotFound: ``missing()``, when there is no such record.
        Conflict: if writers kept winning for :data:`_MAX_ATTEMPTS` rounds.
    """
    for _ in range(_MAX_ATTEMPTS):
        found = await bucket.get(key)
        if found is None:
            raise missing()
        result = apply(codec.decode(found.value))
        try:
            await bucket.update(key, codec.encode(result), found.revision)
        except errdefs.Conflict:
            continue
        return result
    raise errdefs.Conflict(f"{what} is changing too often to update")


class RecordStore(Generic[T]):
    """The records of one kind, in one bucket, by namespace and name.

    Args:
        bucket: where they are kept.
        kind: their Struct type.
        what: their name in errors (``image``, ``container``, ``lease``).
        ensure: called with the namespace before a record is created in it.
    """

    def __init__(self, bucket: Bucket, kind: type[T], what: str, ensure: Ensure) -> None:
        self.bucket = bucket
        self.codec = Codec(kind)
        self.what = what
        self._ensure = ensure

    def key(self, namespace: str, name: str) -> str:
        """The bucket key of ``name`` in ``namespace`` (both checked)."""
        return keys.join(namespaces.validate(namespace), name)

    def not_found(self, namespace: str, name: str) -> errdefs.NotFound:
        """The error for a record that is not there."""
        return errdefs.NotFound(f'{self.what} "{name}" not found in namespace "{namespace}"')

    async def read(self, namespace: str, name: str) -> tuple[T, int]:
        """The record and its revision.

        Raises:
            NotFound: if there is none.
        """
        found = await self.bucket.get(self.key(namespace, name))
        if found is None:
            raise self.not_found(namespace, name)
        return self.codec.decode(found.value), found.revision

    async def insert(self, namespace: str, name: str, record: T) -> int:
        """Store a new record; its revision.

        Raises:
            AlreadyExists: if the name is taken.
        """
        key = self.key(namespace, name)
        await self._ensure(namespace)
        try:
            return await self.bucket.create(key, self.codec.encode(record))
        except errdefs.AlreadyExists as err:
            raise errdefs.AlreadyExists(
                f'{self.what} "{name}" already exists in namespace "{namespace}"'
            ) from err

    async def change(self, namespace: str, name: str, apply: Callable[[T], T]) -> T:
        """Apply ``apply`` to the latest record and store the result, again while others win.

        ``apply`` must be a pure function of the record it is given.

        Raises:
            NotFound: if there is no such record.
            Conflict: if writers kept winning for :data:`_MAX_ATTEMPTS` rounds.
        """
        return await change_entry(
            self.bucket,
            self.key(namespace, name),
            self.codec,
            apply,
            lambda: self.not_found(namespace, name),
            f'{self.what} "{name}"',
        )

    async def remove(self, namespace: str, name: str) -> T:
        """Delete the record; what it was.

        Raises:
            NotFound: if there is none (another deleter came first included).
        """
        key = self.key(namespace, name)
        for _ in range(_MAX_ATTEMPTS):
            current, revision = await self.read(namespace, name)
            try:
                await self.bucket.delete(key, revision)
            except errdefs.Conflict:
                continue
            return current
        raise errdefs.Conflict(f'{self.what} "{name}" is changing too often to delete')

    async def scan(self, namespace: str) -> AsyncIterator[T]:
        """Every record in ``namespace``."""
        pattern = keys.escape(namespaces.validate(namespace)) + ".*"
        decode = self.codec.decode
        async for found in self.bucket.entries(pattern):
            yield decode(found.value)

    async def everything(self) -> AsyncIterator[tuple[str, T]]:
        """Every record in every namespace, with its namespace."""
        decode = self.codec.decode
        async for found in self.bucket.entries("*.*"):
            yield keys.split(found.key)[0], decode(found.value)

    async def holds_any(self, namespace: str) -> bool:
        """Whether ``namespace`` has at least one record here."""
        async for _ in self.scan(namespace):
            return True
        return False


class Catalog(Generic[T]):
    """What every kind of record with events and a collector shares: reads and listings.

    A subclass names its record type (``kind``), what errors call it (``what``) and how
    filters see one record (``adapt``, containerd's adaptor).

    Args:
        bucket: where the records are kept.
        ensure: makes a namespace exist before its first record.
        publisher: where their events go.
        collector: told after a delete.
    """

    kind: type[Any]
    what: str

    def __init__(
        self, bucket: Bucket, ensure: Ensure, publisher: EventPublisher, collector: Collector
    ) -> None:
        self.records: RecordStore[T] = RecordStore(bucket, self.kind, self.what, ensure)
        self._publisher = publisher
        self._collector = collector

    @staticmethod
    def adapt(record: T) -> filters.Adaptor:
        """How filters see ``record``."""
        raise NotImplementedError

    async def get(self, namespace: str, name: str) -> T:
        """The record ``name``.

        Raises:
            NotFound: if there is none in ``namespace``.
        """
        record, _ = await self.records.read(namespace, name)
        return record

    async def list(self, namespace: str, filters_: Sequence[str] = ()) -> AsyncIterator[T]:
        """The records matching any of ``filters_`` (containerd's syntax; none: all)."""
        wanted = filters.parse_all(filters_)
        async for record in self.records.scan(namespace):
            if wanted is filters.ALWAYS or wanted.match(self.adapt(record)):
                yield record
