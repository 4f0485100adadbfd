"""The :class:`Writer` and :class:`ReaderAt` of :class:`~flotilla.content.local.LocalStore`.

Disk IO and hashing run in worker threads, never in the event loop: even a small write may
wait for the disk (a full page cache, writeback congestion). A thread is always waited for, even
by a cancelled caller, before anything else touches the file descriptors it uses.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Final

from flotilla.common import digests
from flotilla.common import labels as label_rules
from flotilla.common.digests import Digest
from flotilla.common.errdefs import FailedPrecondition, InvalidArgument, NotFound, OutOfRange
from flotilla.common.lifecycle import AsyncClosing
from flotilla.common.settle import run_settled, settled
from flotilla.content.local_ingest import Ingest
from flotilla.content.store import Status

__all__ = ["MAX_READ", "CommitHook", "LocalReaderAt", "LocalWriter"]

MAX_READ: Final = 4 << 20
"""The most one :meth:`LocalReaderAt.read_at` returns."""

# Above this, an append hashes in a second thread while its thread writes; below, the hand-off
# would cost more than the hashing it overlaps (~60 µs at 1 GB/s).
_HASH_APART: Final = 64 << 10

CommitHook = Callable[[Ingest, Digest, dict[str, str]], Awaitable[str]]
"""Records a verified ingest as a blob, removes the ingest and announces the blob."""


class LocalWriter(AsyncClosing):
    """The exclusive writer of one ingest; operations on it run one at a time."""

    def __init__(
        self,
        ingest: Ingest,
        commit: CommitHook,
        release: Callable[[LocalWriter], None],
        hasher_pool: Executor,
    ) -> None:
        self._ingest: Ingest | None = ingest
        self._hasher_pool = hasher_pool
        self._ref = ingest.meta.ref
        self._offset = ingest.offset
        self._commit_hook = commit
        self._release = release
        self._busy = asyncio.Lock()
        self._aborted = False

    @property
    def ref(self) -> str:
        """The ingest's ref."""
        return self._ref

    @property
    def offset(self) -> int:
        """Bytes written so far."""
        return self._ingest.offset if self._ingest else self._offset

    async def write(self, data: bytes) -> None:
        """Append ``data`` at the current offset."""
        async with self._busy:
            ingest = self._live()
            hasher_pool = self._hasher_pool if len(data) > _HASH_APART else None
            await run_settled(None, ingest.append, data, hasher_pool)

    @property
    def data_path(self) -> Path:
        """The ingest's data file, for a same-node writer to write into (see :meth:`adopt`)."""
        return self._live().data_path

    def data_identity(self) -> tuple[int, int]:
        """The device and inode of :attr:`data_path`."""
        return self._live().data_identity()

    async def adopt(self, end: int) -> None:
        """Take in what a same-node writer wrote into :attr:`data_path`, up to ``end``.

        The writer appends at :attr:`offset` and must not touch bytes once reported.
        """
        async with self._busy:
            await run_settled(None, self._live().adopt, end)

    async def truncate(self, size: int) -> None:
        """Drop the bytes from ``size`` on."""
        async with self._busy:
            ingest = self._live()
            if not 0 <= size <= ingest.offset:
                raise OutOfRange(
                    f"cannot truncate ref {self._ref} to {size}: offset {ingest.offset}"
                )
            if size != ingest.offset:
                await run_settled(None, ingest.truncate, size)

    async def digest(self) -> str:
        """The digest of the bytes written so far."""
        async with self._busy:
            return str(Digest.of(self._live().hasher))

    async def status(self) -> Status:
        """The ingest's status."""
        async with self._busy:
            return self._live().status()

    async def commit(
        self,
        size: int = 0,
        expected: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Verify the ingest and make it a blob; always closes the writer."""
        async with self._busy:
            ingest = self._live()
            try:
                wanted = digests.parse(expected) if expected else None
                kept = label_rules.validate(labels)
                actual = await run_settled(None, ingest.verify, size, wanted)
                return await settled(self._commit_hook(ingest, actual, kept))
            finally:
                await self._finish(ingest)

    async def close(self) -> None:
        """Release the ref, keeping the ingest."""
        async with self._busy:
            if self._ingest is not None:
                await self._finish(self._ingest)

    async def cancel(self) -> None:
        """Close without keeping anything in order: the ingest is being aborted."""
        async with self._busy:
            self._aborted = True
            if self._ingest is not None:
                await self._finish(self._ingest, sync=False)

    def _live(self) -> Ingest:
        if self._ingest is not None:
            return self._ingest
        if self._aborted:
            raise NotFound(f"ingest ref {self._ref!r} was aborted")
        raise FailedPrecondition(f"writer for ref {self._ref!r} is closed")

    async def _finish(self, ingest: Ingest, *, sync: bool = True) -> None:
        self._offset = ingest.offset
        self._ingest = None
        try:
            if not ingest.closed:
                await run_settled(None, lambda: ingest.close(sync=sync))
        finally:
            self._release(self)


class LocalReaderAt(AsyncClosing):
    """Reads one blob through a file descriptor opened before any delete could unlink it."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size
        self._reading = 0
        self._closed = False

    @property
    def size(self) -> int:
        """The blob's length."""
        return self._size

    async def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``min(size, MAX_READ)`` bytes at ``offset``."""
        if self._closed:
            raise FailedPrecondition("reader is closed")
        if offset < 0 or size < 0:
            raise InvalidArgument(f"negative offset ({offset}) or size ({size})")
        if offset > self._size:
            raise OutOfRange(f"offset {offset} beyond the end of the blob ({self._size} bytes)")
        want = min(size, self._size - offset, MAX_READ)
        if not want:
            return b""
        # Always in a thread, however small: a read may have to wait for the disk.
        self._reading += 1
        try:
            return await run_settled(None, os.pread, self._fd, want, offset)
        finally:
            self._reading -= 1
            self._close_when_idle()

    async def close(self) -> None:
        """Close the reader once no read is in flight."""
        self._closed = True
        self._close_when_idle()

    def _close_when_idle(self) -> None:
        if self._closed and not self._reading and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
