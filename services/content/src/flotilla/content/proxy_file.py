"""A same-node writer's direct line to its ingest: the bytes go into the file, not over the bus.

On the content service's own node the ingest's data file is on this machine's disk. Writing
into it and then reporting how far (``written``) spares the bytes three trips through sockets
and two processes; the service still hashes every byte before it counts (the file's contents
are what it verifies), and commit still checks the digest and size.

File system calls run in worker threads, never in the event loop; their errors leave as errdefs
errors naming the file (a full disk is ``ResourceExhausted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

from flotilla.common import errdefs
from flotilla.common.errdefs import from_os_error
from flotilla.common.files import pwrite_all
from flotilla.common.settle import run_settled
from flotilla.content import convert

__all__ = ["REPORT_EVERY", "IngestFile", "copy_reporting"]

REPORT_EVERY: Final = 16 << 20
"""How many bytes a copy writes between reports, so the service hashes while more arrive."""


class IngestFile:
    """An ingest's data file, opened for writing at the first write and closed before commit.

    Args:
        path: the file, as the content service named it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    @classmethod
    def reachable(cls, path: str, file_id: str) -> IngestFile | None:
        """The file at ``path`` if it is the one the service named and this process may write it.

        A caller that shares the service's node id but not its disk (another container,
        another machine) finds no such file, or another one, and writes over the bus instead.
        Blocking (a ``stat``): in the event loop, use :meth:`reach`.
        """
        if not path:
            return None
        try:
            found = os.stat(path)
        except OSError:
            return None
        if convert.file_id((found.st_dev, found.st_ino)) != file_id:
            return None
        return cls(Path(path)) if os.access(path, os.W_OK) else None

    @classmethod
    async def reach(cls, path: str, file_id: str) -> IngestFile | None:
        """:meth:`reachable`, checked in a worker thread."""
        if not path:  # the service is elsewhere: nothing to look at
            return None
        return await asyncio.to_thread(cls.reachable, path, file_id)

    async def write_at(self, data: bytes, offset: int) -> None:
        """Write all of ``data`` at ``offset``.

        Raises:
            ResourceExhausted: if the disk is full. Part of ``data`` may be in the file; the
                service takes in only what is reported, so writing again from the reported
                offset is safe.
        """
        # Settled: even a cancelled caller waits until the thread is done with the descriptor,
        # so that close() never pulls it from under a write.
        await run_settled(None, self._write_at, data, offset)

    def _write_at(self, data: bytes, offset: int) -> None:
        try:
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
            pwrite_all(self._fd, data, offset)
        except OSError as err:
            raise from_os_error(err, str(self.path)) from err

    def close(self) -> None:
        """Close the file: no descriptor of this process may outlive the ingest into a blob."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


async def copy_reporting(
    file: IngestFile,
    chunks: AsyncIterator[bytes],
    offset: int,
    report: Callable[[int], Awaitable[int]],
) -> int:
    """Write every chunk into ``file`` from ``offset``, reporting progress every few MiB.

    One report is in flight at a time, while the next bytes are written; the last one is
    awaited, so on return the service has taken in every byte.

    Args:
        file: the ingest's file.
        chunks: the bytes.
        offset: where the ingest ends now.
        report: tells the service the file holds bytes up to its argument; returns the
            service's offset.

    Returns:
        The service's offset after the last report.
    """
    reported, end = offset, offset
    in_flight: asyncio.Task[int] | None = None
    try:
        try:
            async for chunk in chunks:
                await file.write_at(chunk, end)
                end += len(chunk)
                if end - reported >= REPORT_EVERY:
                    if in_flight is not None:
                        await in_flight
                    in_flight, reported = asyncio.ensure_future(report(end)), end
        except Exception:
            # The source failed (a dropped download): what reached the file is kept, so a
            # resume starts after it rather than at the last report.
            if in_flight is not None:
                with contextlib.suppress(errdefs.ErrdefsError):
                    await in_flight
                in_flight = None
            if end != reported:
                with contextlib.suppress(errdefs.ErrdefsError):
                    await report(end)
            raise
        if in_flight is not None:
            offset = await in_flight
            in_flight = None
        if end != reported:
            offset = await report(end)
        return offset
    finally:
        if in_flight is not None:
            in_flight.cancel()
