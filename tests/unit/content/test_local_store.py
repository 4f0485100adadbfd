"""LocalStore beyond the conformance suite: on-disk layout, cross-process locks, crash repair."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from flotilla.common import digests, errdefs
from flotilla.content.helpers import read_blob, write_blob
from flotilla.content.local import LocalStore
from flotilla.content.local_ingest import IngestMeta, ingest_dir
from flotilla.testkit.events import RecordingPublisher

NS = "unit"

# Holds a writer on ref "shared" in another process: writes 5 bytes, says so, waits.
HOLDER = """
import asyncio, sys
from flotilla.testkit.events import RecordingPublisher
from flotilla.content.local import LocalStore

async def main():
    store = LocalStore(sys.argv[1], RecordingPublisher())
    writer = await store.writer("unit", "shared")
    await writer.write(b"hello")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main())
"""

# Commits blobs of growing sizes, forever (until killed).
COMMITTER = """
import asyncio, os, sys
from flotilla.testkit.events import RecordingPublisher
from flotilla.content.helpers import write_blob
from flotilla.content.local import LocalStore

async def main():
    store = LocalStore(sys.argv[1], RecordingPublisher())
    print("ready", flush=True)
    for index in range(1_000_000):
        data = os.urandom(1000 + index * 997 % 300_000)
        await write_blob(store, "unit", f"ref-{index % 3}", data)
        if index % 4 == 3:
            await store.delete("unit", await write_blob(store, "unit", "again", data))

asyncio.run(main())
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "content"


@pytest.fixture
async def store(root: Path) -> AsyncIterator[LocalStore]:
    async with LocalStore(root, RecordingPublisher()) as opened:
        yield opened


async def spawn(script: str, root: Path) -> subprocess.Popen[str]:
    """A child running ``script`` on ``root``, once it said it is ready (off the event loop)."""
    return await asyncio.to_thread(_spawn, script, root)


def _spawn(script: str, root: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def blob_files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "blobs").rglob("*") if path.is_file())


async def test_blobs_are_stored_once_per_node(store: LocalStore, root: Path) -> None:
    digest = await write_blob(store, NS, "a", b"shared bytes")
    await write_blob(store, "other", "b", b"shared bytes")
    parsed = digests.parse(digest)
    path = root / "blobs" / parsed.algorithm / parsed.encoded
    assert blob_files(root) == [path]
    assert await store.blob_path(NS, digest) == path
    assert path.read_bytes() == b"shared bytes"
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    await store.delete(NS, digest)
    assert path.exists()
    with pytest.raises(errdefs.NotFound):
        await store.blob_path(NS, digest)
    await store.delete("other", digest)
    assert not path.exists()
    assert list((root / "trash").iterdir()) == []
    assert list((root / "ingest").iterdir()) == []


async def test_lock_is_held_across_processes(store: LocalStore, root: Path) -> None:
    holder = await spawn(HOLDER, root)
    try:
        with pytest.raises(errdefs.Unavailable, match="ref shared locked"):
            await store.writer(NS, "shared")
        with pytest.raises(errdefs.Unavailable):
            await store.abort(NS, "shared")
        assert (await store.status(NS, "shared")).offset == 5
    finally:
        holder.send_signal(signal.SIGKILL)
        await asyncio.to_thread(holder.wait)
    async with await store.writer(NS, "shared") as writer:
        assert writer.offset == 5
        assert await writer.digest() == digests.digest_of(b"hello")


async def test_start_up_repairs_a_crash(root: Path) -> None:
    async with LocalStore(root, RecordingPublisher()) as store:
        kept = await write_blob(store, NS, "kept", b"kept")
        lost = await write_blob(store, NS, "lost", b"lost in the trash")
        async with await store.writer(NS, "resumable") as writer:
            await writer.write(b"half")
    # What a crash can leave: a linked blob no row names, a trashed blob whose delete rolled
    # back, a trashed blob whose delete committed, an ingest torn at its start.
    orphan = root / "blobs" / "sha256" / digests.digest_of(b"orphan")[7:]
    orphan.write_bytes(b"orphan")
    lost_path = root / "blobs" / "sha256" / lost[7:]
    lost_path.rename(root / "trash" / f"sha256-{lost[7:]}-1")
    (root / "trash" / f"sha256-{'0' * 64}-2").write_bytes(b"deleted")
    (root / "ingest" / "torn").mkdir()
    (root / "ingest" / "torn" / "data").write_bytes(b"torn")

    async with LocalStore(root, RecordingPublisher()) as store:
        assert not orphan.exists()
        assert await read_blob(store, NS, lost) == b"lost in the trash"
        assert await read_blob(store, NS, kept) == b"kept"
        assert list((root / "trash").iterdir()) == []
        assert sorted(path.name for path in blob_files(root)) == sorted([kept[7:], lost[7:]])
        assert not (root / "ingest" / "torn").exists()
        assert (await store.status(NS, "resumable")).offset == 4


async def test_kill_during_commits_never_shows_a_torn_blob(root: Path) -> None:
    committed = 0
    for delay in (0.3, 0.45, 0.6, 0.8):
        committer = await spawn(COMMITTER, root)
        await asyncio.sleep(delay)
        committer.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(committer.wait) == -signal.SIGKILL
        async with LocalStore(root, RecordingPublisher()) as store:
            infos = [info async for info in store.walk(NS)]
            assert len(infos) > committed  # the committer got on with its work
            committed = len(infos)
            for info in infos:
                data = await read_blob(store, NS, info.digest)
                assert (len(data), digests.digest_of(data)) == (info.size, info.digest)
            assert len(blob_files(root)) == len(infos)
            assert list((root / "trash").iterdir()) == []


async def test_publishes_only_what_is_durable(root: Path) -> None:
    class Checking(RecordingPublisher):
        async def committed(self, row: int) -> None:
            namespace, topic, event = self.staged[row]
            if topic == "/content/create":
                seen.append((await store.info(namespace, getattr(event, "digest", ""))).size)
            await super().committed(row)

    seen: list[int] = []
    async with LocalStore(root, Checking()) as store:
        await write_blob(store, NS, "r", b"12345")
    assert seen == [5]


async def test_cancelled_write_leaves_a_consistent_ingest(store: LocalStore) -> None:
    data = os.urandom(8 << 20)
    writer = await store.writer(NS, "cancel")
    task = asyncio.create_task(writer.write(data))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await writer.close()
    async with await store.writer(NS, "cancel") as writer:
        assert writer.offset in (0, len(data))
        await writer.truncate(0)
        await writer.write(data)
        assert await writer.commit(len(data)) == digests.digest_of(data)


async def test_resume_with_other_content_starts_afresh(store: LocalStore) -> None:
    one, two = digests.digest_of(b"one"), digests.digest_of(b"two")
    async with await store.writer(NS, "ref", total=10) as writer:
        await writer.write(b"1")
    async with await store.writer(NS, "ref", expected=one) as writer:
        status = await writer.status()
        assert (status.offset, status.total, status.expected) == (1, 10, one)
    async with await store.writer(NS, "ref", expected=two) as writer:
        status = await writer.status()
        assert (status.offset, status.total, status.expected) == (0, 0, two)
        await writer.write(b"2")
    async with await store.writer(NS, "ref", total=11) as writer:
        status = await writer.status()
        assert (status.offset, status.total, status.expected) == (1, 11, two)
    async with await store.writer(NS, "ref", total=12) as writer:
        status = await writer.status()
        assert (status.offset, status.total, status.expected) == (0, 12, None)


async def test_closed_store_is_unavailable(root: Path) -> None:
    store = await LocalStore.open(root, RecordingPublisher())
    writer = await store.writer(NS, "open")
    await writer.write(b"kept")
    await store.close()
    await store.close()
    with pytest.raises(errdefs.Unavailable):
        await store.info(NS, digests.digest_of(b""))
    with pytest.raises(errdefs.FailedPrecondition):
        await writer.write(b"more")
    async with LocalStore(root, RecordingPublisher()) as reopened:
        assert (await reopened.status(NS, "open")).offset == 4


async def test_walk_pages_through_many_blobs(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flotilla.content.local._PAGE", 4)
    written = {await write_blob(store, NS, f"r{index}", b"%d" % index) for index in range(30)}
    assert {info.digest async for info in store.walk(NS)} == written
    assert len([info async for info in store.walk(NS, ["size==2"])]) == 20


async def test_ingest_left_by_a_crash_after_commit_never_touches_the_blob(
    store: LocalStore, root: Path
) -> None:
    digest = await write_blob(store, NS, "committed", b"precious")
    # The crash: committed (data linked into blobs/) but the ingest not yet removed.
    directory = ingest_dir(root / "ingest", NS, "committed")
    directory.mkdir()
    os.link(await store.blob_path(NS, digest), directory / "data")
    meta = IngestMeta(namespace=NS, ref="committed", total=8)
    (directory / "meta.json").write_bytes(msgspec.json.encode(meta))
    with pytest.raises(errdefs.NotFound):
        await store.status(NS, "committed")
    async with await store.writer(NS, "committed", total=8) as writer:
        assert writer.offset == 0
        await writer.write(b"scribble")
    assert await read_blob(store, NS, digest) == b"precious"


async def test_a_failed_write_keeps_the_ingest_as_it_was(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await store.writer(NS, "full")
    await writer.write(b"before")

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "pwrite", full)
        with pytest.raises(errdefs.ResourceExhausted, match="no space left on device"):
            await writer.write(b"lost")
    assert writer.offset == len(b"before")
    await writer.write(b"more")
    await writer.close()
    async with await store.writer(NS, "full") as writer:
        assert writer.offset == len(b"beforemore")
        await writer.write(b"after")
        assert await writer.commit() == digests.digest_of(b"beforemoreafter")


async def test_a_cancelled_commit_still_ends_and_announces(root: Path) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    class Slow(RecordingPublisher):
        async def committed(self, row: int) -> None:
            entered.set()
            await release.wait()
            await super().committed(row)

    publisher = Slow()
    async with LocalStore(root, publisher) as store:
        writer = await store.writer(NS, "slow")
        await writer.write(b"slow")
        commit = asyncio.create_task(writer.commit())
        await entered.wait()
        commit.cancel()
        await asyncio.sleep(0.01)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await commit
        digest = digests.digest_of(b"slow")
        assert (await store.info(NS, digest)).size == 4
        assert [topic for _, topic, _ in publisher.published] == ["/content/create"]
        with pytest.raises(errdefs.NotFound):
            await store.status(NS, "slow")
