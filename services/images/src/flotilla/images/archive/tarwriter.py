"""Writing a tar stream from asyncio: headers built by :mod:`tarfile`, bytes written off the loop.

Every write to the output happens in a worker thread (the output may be a pipe that blocks),
and a blob's bytes are hashed there too, so the event loop only moves chunks. Entries are
deterministic: owner root, mode 0444 for files and 0755 for directories, time 0.
"""

from __future__ import annotations

import asyncio
import tarfile
from collections.abc import AsyncIterator
from typing import BinaryIO, Final

from flotilla.common.digests import Hasher

__all__ = ["TarOut"]

_BLOCK: Final = tarfile.BLOCKSIZE


class TarOut:
    """An uncompressed tar written to ``out`` (left open)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    async def directory(self, name: str) -> None:
        """A directory entry."""
        await asyncio.to_thread(self._out.write, _header(name, tarfile.DIRTYPE, 0, 0o755))

    async def file(self, name: str, data: bytes) -> None:
        """A regular file holding ``data``."""
        header = _header(name, tarfile.REGTYPE, len(data), 0o444)
        await asyncio.to_thread(self._out.write, header + data + _padding(len(data)))

    async def stream(
        self, name: str, size: int, chunks: AsyncIterator[bytes], hasher: Hasher
    ) -> int:
        """A regular file of ``size`` bytes from ``chunks``, hashed into ``hasher``.

        Returns:
            How many bytes ``chunks`` held; the caller fails the export if not ``size``
            (the tar is then broken).
        """
        await asyncio.to_thread(self._out.write, _header(name, tarfile.REGTYPE, size, 0o444))
        written = 0
        async for chunk in chunks:
            take = chunk[: max(0, size - written)]
            await asyncio.to_thread(_write_hashed, self._out, hasher, take)
            written += len(chunk)
        await asyncio.to_thread(self._out.write, _padding(min(written, size)))
        return written

    async def close(self) -> None:
        """Write the end-of-archive marker and flush; ``out`` stays open."""
        await asyncio.to_thread(self._out.write, b"\0" * (2 * _BLOCK))
        await asyncio.to_thread(self._out.flush)


def _header(name: str, kind: bytes, size: int, mode: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, mode, 0
    info.uname = info.gname = "root"
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _write_hashed(out: BinaryIO, hasher: Hasher, data: bytes) -> None:
    hasher.update(data)
    out.write(data)
