"""Same-node writes: a writer puts bytes into the ingest's file, the store adopts them.

Nothing reaches a blob without being hashed by the store: reports that overstate the file,
bytes never reported, and a writer that dies between writing and reporting all end in a
blob that matches its digest, or in a clear error.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.content.helpers import read_blob
from flotilla.content.local import LocalStore
from flotilla.content.local_handles import LocalWriter
from flotilla.testkit.events import RecordingPublisher

NS = "unit"


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    async with LocalStore(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened


def write_into(writer: LocalWriter, data: bytes, at: int) -> int:
    """What a same-node writer does: write into the ingest's file; returns the new end."""
    fd = os.open(writer.data_path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, at)
    finally:
        os.close(fd)
    return at + len(data)


async def test_adopted_bytes_commit_like_written_ones(store: LocalStore) -> None:
    data = os.urandom(3 << 20)
    async with await store.writer(NS, "local") as writer:
        await writer.write(data[:100])  # the bus path and the file path mix
        end = write_into(writer, data[100 : 2 << 20], 100)
        await writer.adopt(end)
        await writer.adopt(write_into(writer, data[2 << 20 :], end))
        assert writer.offset == len(data)
        assert await writer.digest() == sha256(data)
        digest = await writer.commit(len(data), sha256(data))
    assert await read_blob(store, NS, digest) == data


async def test_a_report_beyond_the_file_is_refused(store: LocalStore) -> None:
    async with await store.writer(NS, "overstated") as writer:
        end = write_into(writer, b"four", 0)
        with pytest.raises(errdefs.FailedPrecondition, match=r"reports 10 bytes.*holds 4"):
            await writer.adopt(10)
        assert writer.offset == 0
        await writer.adopt(end)  # a correct report still works
        assert writer.offset == 4


async def test_a_report_before_the_offset_is_out_of_range(store: LocalStore) -> None:
    async with await store.writer(NS, "backwards") as writer:
        await writer.write(b"0123456789")
        with pytest.raises(errdefs.OutOfRange):
            await writer.adopt(5)


async def test_bytes_never_reported_are_not_committed(store: LocalStore) -> None:
    async with await store.writer(NS, "tail") as writer:
        await writer.adopt(write_into(writer, b"kept", 0))
        write_into(writer, b" and an unreported tail", 4)
        digest = await writer.commit(4, sha256(b"kept"))
    assert await read_blob(store, NS, digest) == b"kept"


async def test_after_a_crash_the_file_is_the_offset(store: LocalStore) -> None:
    """A writer that wrote but died before reporting: a resumed writer counts its bytes."""
    async with await store.writer(NS, "crashed") as writer:
        await writer.adopt(write_into(writer, b"reported ", 0))
        write_into(writer, b"unreported", 9)
    async with await store.writer(NS, "crashed") as resumed:
        assert resumed.offset == len(b"reported unreported")
        digest = await resumed.commit()
    assert await read_blob(store, NS, digest) == b"reported unreported"
