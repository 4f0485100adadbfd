"""Namespaces: created on first use or on request, labelled, deleted only when empty.

A namespace's record is its name in ``flotilla_namespaces``. Writing any record in a namespace
first makes sure the namespace exists (containerd creates it implicitly too); a namespace seen
once is remembered, so that costs one read per process and namespace.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from flotilla.common import errdefs, labels, namespaces
from flotilla.common.events import EventPublisher
from flotilla.metadata import events, keys
from flotilla.metadata.bucket import Bucket
from flotilla.metadata.ports import Holder
from flotilla.metadata.records import Codec, Namespace
from flotilla.metadata.store import change_entry

__all__ = ["NamespaceStore"]


class NamespaceStore:
    """containerd's Namespaces API on one bucket.

    Args:
        bucket: the namespaces' bucket.
        publisher: where their events go.
    """

    def __init__(self, bucket: Bucket, publisher: EventPublisher) -> None:
        self.bucket = bucket
        self._publisher = publisher
        self._codec = Codec(Namespace)
        self._known: set[str] = set()
        self.kinds: list[tuple[str, Holder]] = []
        """Who else may hold a namespace's objects, asked by :meth:`delete` in order."""

    async def create(self, name: str, labels_: dict[str, str] | None = None) -> Namespace:
        """Create the namespace ``name``.

        Raises:
            InvalidArgument: on an invalid name or label.
            AlreadyExists: if it exists.
        """
        record = Namespace(name=namespaces.validate(name), labels=labels.validate(labels_))
        try:
            await self.bucket.create(keys.escape(name), self._codec.encode(record))
        except errdefs.AlreadyExists as err:
            raise errdefs.AlreadyExists(f'namespace "{name}" already exists') from err
        self._known.add(name)
        await self._publisher.publish(
            name, events.NAMESPACE_CREATE, events.NamespaceCreate(name=name, labels=record.labels)
        )
        return record

    async def ensure(self, name: str) -> None:
        """Make sure ``name`` exists, creating it unlabelled if it does not."""
        if name in self._known:
            return
        if await self.bucket.get(keys.escape(namespaces.validate(name))) is None:
            with contextlib.suppress(errdefs.AlreadyExists):  # another writer made it first
                await self.create(name)
        self._known.add(name)

    async def get(self, name: str) -> Namespace:
        """The namespace ``name``.

        Raises:
            NotFound: if it does not exist.
        """
        found = await self.bucket.get(keys.escape(namespaces.validate(name)))
        if found is None:
            raise errdefs.NotFound(f'namespace "{name}" not found')
        return self._codec.decode(found.value)

    async def list(self) -> AsyncIterator[Namespace]:
        """Every namespace."""
        async for found in self.bucket.entries("*"):
            yield self._codec.decode(found.value)

    async def update(
        self, name: str, labels_: dict[str, str], fieldpaths: Sequence[str] = ()
    ) -> Namespace:
        """Change the labels along ``fieldpaths`` (``labels``, ``labels.<key>``; none: all).

        Raises:
            NotFound: if the namespace does not exist.
            InvalidArgument: on another field path or an invalid label.
        """
        what = f'namespace "{name}"'

        def apply(current: Namespace) -> Namespace:
            return Namespace(
                name=name, labels=labels.updated(current.labels, labels_, fieldpaths, what)
            )

        def missing() -> errdefs.NotFound:
            return errdefs.NotFound(f"{what} not found")

        key = keys.escape(namespaces.validate(name))
        record = await change_entry(self.bucket, key, self._codec, apply, missing, what)
        event = events.NamespaceUpdate(name=name, labels=record.labels)
        await self._publisher.publish(name, events.NAMESPACE_UPDATE, event)
        return record

    async def delete(self, name: str) -> None:
        """Delete an empty namespace.

        Raises:
            NotFound: if it does not exist.
            FailedPrecondition: naming what it still has (images, containers, leases, blobs,
                snapshots) otherwise.
        """
        key = keys.escape(namespaces.validate(name))
        found = await self.bucket.get(key)
        if found is None:
            raise errdefs.NotFound(f'namespace "{name}" not found')
        remaining = [kind for kind, holder in self.kinds if await holder.holds_any(name)]
        if remaining:
            raise errdefs.FailedPrecondition(
                f'namespace "{name}" must be empty, but it still has {", ".join(remaining)}'
            )
        try:
            await self.bucket.delete(key, found.revision)
        except errdefs.Conflict as err:
            raise errdefs.Conflict(f'namespace "{name}" changed while it was deleted') from err
        self._known.discard(name)
        await self._publisher.publish(
            name, events.NAMESPACE_DELETE, events.NamespaceDelete(name=name)
        )
