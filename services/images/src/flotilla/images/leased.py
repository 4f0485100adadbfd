"""A content store whose every commit a lease holds first, so no collection takes it early.

The collector keeps what leases hold; a blob committed before anything names it would be
fair game. Wrapped in :class:`LeasedStore`, every blob is added to the lease before its
commit: by its expected digest when the writer is opened with one, else by the digest its
bytes have when it is committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

from flotilla.common.lifecycle import AsyncClosing
from flotilla.content.store import Info, ReaderAt, Status, Store, Writer

__all__ = ["Hold", "LeasedStore"]

Hold = Callable[[str], Awaitable[None]]
"""Adds a digest to the lease."""


class _LeasedWriter(AsyncClosing):
    """A writer that holds its blob's digest before committing it."""

    def __init__(self, inner: Writer, hold: Hold, held: str | None) -> None:
        self._inner = inner
        self._hold = hold
        self._held = held

    @property
    def ref(self) -> str:
        return self._inner.ref

    @property
    def offset(self) -> int:
        return self._inner.offset

    async def write(self, data: bytes) -> None:
        await self._inner.write(data)

    async def truncate(self, size: int) -> None:
        await self._inner.truncate(size)

    async def digest(self) -> str:
        return await self._inner.digest()

    async def status(self) -> Status:
        return await self._inner.status()

    async def commit(
        self, size: int = 0, expected: str | None = None, labels: Mapping[str, str] | None = None
    ) -> str:
        digest = expected or await self._inner.digest()
        if digest != self._held:
            await self._hold(digest)
        return await self._inner.commit(size, expected, labels)

    async def close(self) -> None:
        await self._inner.close()


class LeasedStore:
    """``store`` with every commit held by ``hold`` first (a :class:`Store`)."""

    def __init__(self, store: Store, hold: Hold) -> None:
        self._store = store
        self._hold = hold

    async def writer(
        self, namespace: str, ref: str, total: int = 0, expected: str | None = None
    ) -> Writer:
        if expected:
            await self._hold(expected)
        inner = await self._store.writer(namespace, ref, total, expected)
        return _LeasedWriter(inner, self._hold, expected)

    async def reader_at(self, namespace: str, digest: str) -> ReaderAt:
        return await self._store.reader_at(namespace, digest)

    async def status(self, namespace: str, ref: str) -> Status:
        return await self._store.status(namespace, ref)

    async def list_statuses(self, namespace: str, filters: Sequence[str] = ()) -> list[Status]:
        return await self._store.list_statuses(namespace, filters)

    async def abort(self, namespace: str, ref: str) -> None:
        await self._store.abort(namespace, ref)

    async def info(self, namespace: str, digest: str) -> Info:
        return await self._store.info(namespace, digest)

    async def update(self, namespace: str, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        return await self._store.update(namespace, info, fieldpaths)

    def walk(self, namespace: str, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        return self._store.walk(namespace, filters)

    async def delete(self, namespace: str, digest: str) -> None:
        await self._store.delete(namespace, digest)

    async def namespaces(self, *, ingests: bool = False) -> list[str]:
        return await self._store.namespaces(ingests=ingests)
