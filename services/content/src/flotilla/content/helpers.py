"""Helpers over the content Protocols, as containerd's ``core/content/helpers.go``.

They use only :mod:`flotilla.content.store`, so they work on any implementation: the local
store, the NATS proxy, a test fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Final

from flotilla.common import digests
from flotilla.common.errdefs import AlreadyExists
from flotilla.content.store import Ingester, Provider, ReaderAt

__all__ = ["CHUNK", "iter_range", "read_blob", "write_blob"]

CHUNK: Final = 1 << 20


async def iter_range(
    reader: ReaderAt, offset: int = 0, size: int | None = None, chunk: int = CHUNK
) -> AsyncIterator[bytes]:
    """The bytes of ``reader`` from ``offset``, ``size`` of them (all when ``None``), in chunks.

    Raises:
        OutOfRange: if ``offset`` is beyond the end.
    """
    end = reader.size if size is None else min(reader.size, offset + size)
    while True:
        data = await reader.read_at(offset, max(0, min(chunk, end - offset)))
        if not data:
            return
        yield data
        offset += len(data)


async def read_blob(provider: Provider, namespace: str, digest: str) -> bytes:
    """The whole blob, in memory: for small blobs (manifests, configs) only."""
    async with await provider.reader_at(namespace, digest) as reader:
        return b"".join([data async for data in iter_range(reader)])


async def write_blob(
    ingester: Ingester,
    namespace: str,
    ref: str,
    data: bytes,
    expected: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Write ``data`` under ``ref`` and commit it, resuming what a previous attempt wrote.

    As containerd's ``content.WriteBlob``, a blob the namespace already has counts as
    written.

    Returns:
        The blob's digest.
    """
    wanted = expected or digests.digest_of(data)
    try:
        writer = await ingester.writer(namespace, ref, total=len(data), expected=wanted)
    except AlreadyExists:
        return wanted
    async with writer:
        if writer.offset > len(data):
            await writer.truncate(0)
        for start in range(writer.offset, len(data), CHUNK):
            await writer.write(data[start : start + CHUNK])
        try:
            return await writer.commit(len(data), wanted, labels)
        except AlreadyExists:
            return wanted
