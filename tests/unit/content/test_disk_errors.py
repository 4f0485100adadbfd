"""Disk errors in the ingest path: errdefs errors naming the file, and nothing in doubt after.

A full disk is played by ``os.pwrite`` taking only the bytes there is room for, then failing
with ENOSPC; a real full file system is in ``tests/integration/test_content_disk_full.py``.
Also: no file system call of a writer runs in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from flotilla.common import digests, errdefs
from flotilla.common.digests import Digest
from flotilla.content import convert
from flotilla.content.local_handles import LocalWriter
from flotilla.content.local_ingest import Ingest, IngestMeta, ingest_dir
from flotilla.content.proxy_file import IngestFile

NS = "unit"
MIB = 1 << 20
FULL = "no space left on device "


def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class Disk:
    """``os.pwrite`` on a disk with ``room`` bytes left: a short write, then ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room
        self._pwrite = os.pwrite

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        if not self.room:
            raise enospc()
        written = self._pwrite(fd, memoryview(data)[: self.room], offset)
        self.room -= written
        return written


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    disk = Disk(room=1 << 40)
    monkeypatch.setattr(os, "pwrite", disk.pwrite)
    return disk


@pytest.fixture
def hashers() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(thread_name_prefix="test-hash") as pool:
        yield pool


def open_ingest(root: Path, ref: str) -> Ingest:
    return Ingest.open(ingest_dir(root / "ingest", NS, ref), IngestMeta(namespace=NS, ref=ref))


async def commit_hook(ingest: Ingest, digest: Digest, labels: Mapping[str, str]) -> str:
    await asyncio.to_thread(ingest.remove)
    return str(digest)


OpenWriter = Callable[[str], AbstractAsyncContextManager[LocalWriter]]


@pytest.fixture
def open_writer(tmp_path: Path, hashers: ThreadPoolExecutor) -> OpenWriter:
    """Opens a writer as the store does, without the store."""

    @contextlib.asynccontextmanager
    async def open_writer(ref: str) -> AsyncIterator[LocalWriter]:
        ingest = await asyncio.to_thread(open_ingest, tmp_path, ref)
        writer = LocalWriter(ingest, commit_hook, lambda _: None, hashers)
        try:
            yield writer
        finally:
            await writer.close()

    return open_writer


@pytest.mark.parametrize(
    ("code", "cls", "text"),
    [
        (errno.ENOSPC, errdefs.ResourceExhausted, "no space left on device (/where)"),
        (errno.EDQUOT, errdefs.ResourceExhausted, "disk quota exceeded (/where)"),
        (errno.EACCES, errdefs.PermissionDenied, "permission denied (/where)"),
        (errno.ENOENT, errdefs.NotFound, "no such file or directory (/where)"),
        (errno.EROFS, errdefs.FailedPrecondition, "read-only file system (/where)"),
        (errno.EIO, errdefs.Internal, "input/output error (/where)"),
    ],
)
def test_os_errors_map_to_errdefs(code: int, cls: type[errdefs.ErrdefsError], text: str) -> None:
    error = errdefs.from_os_error(OSError(code, os.strerror(code)), "/where")
    assert type(error) is cls
    assert str(error) == text


@pytest.mark.parametrize("size", [1000, 3 * MIB], ids=["hashed in its thread", "hashed apart"])
async def test_a_full_disk_leaves_the_writer_where_it_was(
    disk: Disk, open_writer: OpenWriter, size: int
) -> None:
    data = os.urandom(size)
    async with open_writer("full") as writer:
        await writer.write(b"before")
        disk.room = size // 2
        with pytest.raises(errdefs.ResourceExhausted, match=FULL + r"\(/.*/data\)"):
            await writer.write(data)
        assert writer.offset == len(b"before")
        assert writer.data_path.stat().st_size == len(b"before")  # the half written is cut off
        assert await writer.digest() == digests.digest_of(b"before")

        disk.room = 1 << 40  # space freed: the same writer goes on
        await writer.write(data)
        assert await writer.commit() == digests.digest_of(b"before" + data)


async def test_a_failed_fsync_needs_a_reopened_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashers: ThreadPoolExecutor
) -> None:
    ingest = await asyncio.to_thread(open_ingest, tmp_path, "synced")
    await asyncio.to_thread(ingest.append, b"bytes")
    fsync = os.fsync

    def fail_once(fd: int) -> None:
        monkeypatch.setattr(os, "fsync", fsync)
        raise enospc()

    monkeypatch.setattr(os, "fsync", fail_once)
    with pytest.raises(errdefs.ResourceExhausted, match="no space left on device"):
        await asyncio.to_thread(ingest.verify, 5, None)
    with pytest.raises(errdefs.FailedPrecondition, match="open it again to resume"):
        await asyncio.to_thread(ingest.append, b"more")
    await asyncio.to_thread(ingest.close)

    reopened = await asyncio.to_thread(open_ingest, tmp_path, "synced")
    writer = LocalWriter(reopened, commit_hook, lambda _: None, hashers)
    assert writer.offset == 5
    await writer.write(b"more")
    assert await writer.commit() == digests.digest_of(b"bytesmore")


async def test_no_room_to_start_leaves_nothing_behind(tmp_path: Path, disk: Disk) -> None:
    disk.room = 0  # not even the metadata fits
    with pytest.raises(errdefs.ResourceExhausted, match=r"no space left on device \(/.*/ingest/"):
        await asyncio.to_thread(open_ingest, tmp_path, "fresh")
    assert list((tmp_path / "ingest").iterdir()) == []


async def test_same_node_file_errors_are_errdefs(tmp_path: Path, disk: Disk) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"")
    file = IngestFile(path)
    disk.room = 3
    with pytest.raises(errdefs.ResourceExhausted, match=f"no space left on device \\({path}\\)"):
        await file.write_at(b"12345", 0)
    file.close()
    with pytest.raises(errdefs.NotFound, match="no such file or directory"):
        await IngestFile(tmp_path / "aborted").write_at(b"12345", 0)


class Calls:
    """Records the calls of some ``os`` functions on a file under ``root`` made in the loop.

    Only those: asyncio's debug mode itself stats source files in the loop.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path, *names: str) -> None:
        self.in_loop: list[str] = []
        self._root = str(root)
        for name in names:
            monkeypatch.setattr(os, name, self._watch(name, getattr(os, name)))

    def _watch(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def watched(target: Any, *args: Any, **kwargs: Any) -> Any:
            ours = isinstance(target, int) or str(target).startswith(self._root)
            if ours and threading.current_thread() is threading.main_thread():
                self.in_loop.append(name)
            return call(target, *args, **kwargs)

        return watched


async def test_no_file_system_call_runs_in_the_event_loop(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    open_writer: OpenWriter,
) -> None:
    async with open_writer("small") as writer:
        calls = Calls(
            monkeypatch, tmp_path, "pwrite", "stat", "access", "open", "preadv", "ftruncate"
        )
        for _ in range(3):
            await writer.write(b"a few bytes")  # once written in the event loop
        await writer.truncate(3)
        path = str(writer.data_path)
        found = await IngestFile.reach(path, convert.file_id(writer.data_identity()))
        assert found is not None
        await found.write_at(b"same node", writer.offset)
        found.close()
        await writer.adopt(writer.offset + len(b"same node"))
        assert calls.in_loop == []


async def test_a_cancelled_file_write_waits_for_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    pwrite = os.pwrite

    def stuck(fd: int, data: Any, offset: int) -> int:
        entered.set()
        release.wait()
        return pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", stuck)
    (tmp_path / "data").write_bytes(b"")
    file = IngestFile(tmp_path / "data")
    task = asyncio.create_task(file.write_at(b"12345", 0))
    await asyncio.to_thread(entered.wait)
    task.cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()  # still waiting for the thread, which still holds the descriptor
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    file.close()
    assert (tmp_path / "data").read_bytes() == b"12345"
