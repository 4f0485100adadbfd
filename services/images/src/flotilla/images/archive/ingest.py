"""Writing an import's blobs into a content store, each checked by the store's commit.

A blob is written under a ref of its own (``import-<token>-<n>-<digest>``, so two imports of
the same blob never wait on each other's lock) in chunks of 1 MiB, read from the archive in a
worker thread, and committed with its size and digest: the digest the archive names it by, or
for a ``docker save`` layer the one computed while it was read. So the store verifies every
byte. A blob the namespace already has is not written again; it only gets the labels. An ingest
is aborted whenever it is not committed, so a failed import leaves none open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import IO, Final

from flotilla.common import digests
from flotilla.common.digests import Digest, Hasher
from flotilla.common.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from flotilla.content.store import Info, Store, Writer
from flotilla.images import oci
from flotilla.images.archive.entries import CORRUPT, Catalog
from flotilla.images.archive.plan import Blob

__all__ = ["CHUNK", "Ingest", "Written"]

CHUNK: Final = 1 << 20
_HEAD: Final = 16
_Copy = Callable[[Writer], Awaitable[tuple[int, str, bytes]]]


@dataclass(frozen=True)
class Written:
    """A blob now in the store: its digest, size and first bytes (empty if it was there)."""

    digest: str
    size: int
    head: bytes = b""


class Ingest:
    """Writes one import's blobs to ``store`` in ``namespace``, each with ``labels`` and its own.

    Args:
        store: the content store.
        namespace: where the blobs go.
        catalog: the archive they are read from.
        labels: labels every imported blob gets.
    """

    def __init__(
        self, store: Store, namespace: str, catalog: Catalog, labels: Mapping[str, str]
    ) -> None:
        self._store = store
        self._namespace = namespace
        self._catalog = catalog
        self._labels = dict(labels)
        self._token = uuid.uuid4().hex[:12]
        self._count = itertools.count()
        self._present: dict[str, dict[str, str]] = {}

    async def blob(
        self, blob: Blob, check_head: Callable[[bytes], object] | None = None
    ) -> Written:
        """Write ``blob`` from the archive (or from its kept bytes).

        Args:
            blob: what to write; without a descriptor its digest is computed.
            check_head: called with the blob's first bytes before it is committed; what it
                raises fails the write.

        Raises:
            InvalidArgument: the bytes are not what the descriptor says (the store refused
                them), or the archive ends inside the blob.
        """
        if blob.data is not None and blob.desc is not None:
            return await self.data(blob.data, blob.desc, blob.labels, blob.entry)
        expected = blob.desc.digest if blob.desc else None
        return await self._guarded(
            blob.entry,
            expected,
            blob.labels,
            lambda writer: self._copy(blob, writer, check_head),
            size=blob.member.size,
        )

    async def data(
        self, data: bytes, desc: oci.Descriptor, labels: Mapping[str, str], entry: str
    ) -> Written:
        """Write a blob held in memory."""

        async def copy(writer: Writer) -> tuple[int, str, bytes]:
            for start in range(0, len(data), CHUNK):
                await writer.write(data[start : start + CHUNK])
            return len(data), desc.digest, data[:_HEAD]

        return await self._guarded(entry, desc.digest, labels, copy, size=len(data))

    async def relabel(self) -> None:
        """Give the blobs the namespace already had the labels of this import."""
        for digest, labels in self._present.items():
            if labels:
                info = Info(digest=digest, labels=labels)
                await self._store.update(self._namespace, info, [f"labels.{k}" for k in labels])

    async def _guarded(
        self,
        entry: str,
        expected: str | None,
        labels: Mapping[str, str],
        copy: _Copy,
        *,
        size: int,
    ) -> Written:
        ref = f"import-{self._token}-{next(self._count)}-{expected or 'blob'}"
        wanted = {**self._labels, **labels}
        try:
            writer = await self._store.writer(self._namespace, ref, size, expected)
        except AlreadyExists:
            assert expected is not None  # only a known digest can already exist
            self._present[expected] = wanted
            return Written(expected, size)
        committed = False
        try:
            async with writer:
                written, digest, head = await copy(writer)
                try:
                    await writer.commit(written, digest, wanted)
                except AlreadyExists:
                    self._present[digest] = wanted
                committed = True
            return Written(digest, written, head)
        except FailedPrecondition as err:
            what = f"blob {expected} ({entry})" if expected else entry
            raise InvalidArgument(
                f"{self._catalog.path}: {what}: the store refused it: {err}"
            ) from err
        finally:
            if not committed:
                await asyncio.shield(self._abort(ref))

    async def _copy(
        self, blob: Blob, writer: Writer, check_head: Callable[[bytes], object] | None
    ) -> tuple[int, str, bytes]:
        member = blob.member
        algorithm = digests.parse(blob.desc.digest).algorithm if blob.desc else digests.CANONICAL
        hasher = digests.hasher(algorithm)
        where = f"{self._catalog.path}: {blob.entry}"
        reader = await asyncio.to_thread(self._catalog.open, member)
        head, remaining = b"", member.size
        while remaining:
            chunk = await asyncio.to_thread(_read, reader, hasher, min(CHUNK, remaining), where)
            if not head:
                head = chunk[:_HEAD]
            await writer.write(chunk)
            remaining -= len(chunk)
        if check_head is not None:
            check_head(head)
        digest = blob.desc.digest if blob.desc else str(Digest.of(hasher))
        return member.size, digest, head

    async def _abort(self, ref: str) -> None:
        with contextlib.suppress(NotFound):
            await self._store.abort(self._namespace, ref)


def _read(reader: IO[bytes], hasher: Hasher, size: int, where: str) -> bytes:
    """Up to ``size`` bytes, hashed; in a worker thread.

    Raises:
        InvalidArgument: the archive cannot be read there (cut short, corrupt, unreadable).
    """
    try:
        chunk = reader.read(size)
    except CORRUPT as err:
        raise InvalidArgument(f"{where}: archive truncated or corrupt: {err}") from None
    if not chunk:
        raise InvalidArgument(f"{where}: archive truncated: unexpected end of data")
    hasher.update(chunk)
    return chunk
