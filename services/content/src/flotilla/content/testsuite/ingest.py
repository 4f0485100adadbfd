"""Conformance cases for ingests: writers, resume, locks, commit checks, abort, statuses."""

from __future__ import annotations

import hashlib

import pytest

from flotilla.common import digests, errdefs
from flotilla.content.helpers import read_blob
from flotilla.content.store import Store
from flotilla.content.testsuite.support import SLACK, Restart, commit_blob, make_blob, now

__all__ = ["IngestCases"]


class IngestCases:
    """Ingester and IngestManager behaviour, and Writer.commit's checks."""

    async def test_write_commit_info_read(self, store: Store, namespace: str) -> None:
        """Bytes written in pieces commit under their digest, with size, labels and times."""
        data, digest = make_blob(100_003)
        labels = {"purpose": "suite", "containerd.io/gc.root": "2024-01-01T00:00:00Z"}
        before = now()
        async with await store.writer(namespace, "ref-1", total=len(data)) as writer:
            assert writer.ref == "ref-1"
            assert writer.offset == 0
            await writer.write(data[:1000])
            await writer.write(data[1000:])
            assert writer.offset == len(data)
            assert await writer.digest() == digest
            status = await writer.status()
            assert (status.ref, status.offset, status.total) == ("ref-1", len(data), len(data))
            assert await writer.commit(len(data), digest, labels) == digest
        after = now()
        info = await store.info(namespace, digest)
        assert (info.digest, info.size, dict(info.labels)) == (digest, len(data), labels)
        assert before - SLACK <= info.created_at <= after + SLACK
        assert info.updated_at == info.created_at
        assert await read_blob(store, namespace, digest) == data
        with pytest.raises(errdefs.NotFound):
            await store.status(namespace, "ref-1")

    async def test_commit_without_expected_digest(self, store: Store, namespace: str) -> None:
        """Without an expected digest, commit names the blob by its sha256."""
        data, digest = make_blob(4096, seed=1)
        async with await store.writer(namespace, "no-expected") as writer:
            await writer.write(data)
            assert await writer.commit() == digest
        assert (await store.info(namespace, digest)).size == len(data)

    async def test_sha512(self, store: Store, namespace: str) -> None:
        """The expected digest's algorithm names the blob, given at open or only at commit."""
        data, _ = make_blob(5000, seed=2)
        digest = digests.digest_of(data, "sha512")
        async with await store.writer(namespace, "sha512", expected=digest) as writer:
            await writer.write(data)
            assert await writer.digest() == digest
            assert await writer.commit(len(data), digest) == digest
        async with await store.writer(namespace, "late-sha512") as writer:
            await writer.write(data + b"!")
            late = digests.digest_of(data + b"!", "sha512")
            assert await writer.commit(0, late) == late
        assert await read_blob(store, namespace, digest) == data

    async def test_empty_blob(self, store: Store, namespace: str) -> None:
        """A zero-length blob is a blob."""
        digest = await commit_blob(store, namespace, b"")
        assert (await store.info(namespace, digest)).size == 0
        assert await read_blob(store, namespace, digest) == b""

    @pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 1.0])
    async def test_resume_after_close(self, store: Store, namespace: str, fraction: float) -> None:
        """A closed writer's ingest resumes at the stored offset."""
        data, digest = make_blob(50_000, seed=3)
        cut = int(len(data) * fraction)
        async with await store.writer(namespace, "resume", len(data), digest) as writer:
            await writer.write(data[:cut])
        status = await store.status(namespace, "resume")
        assert (status.offset, status.total, status.expected) == (cut, len(data), digest)
        async with await store.writer(namespace, "resume", len(data), digest) as writer:
            assert writer.offset == cut
            await writer.write(data[cut:])
            assert await writer.commit(len(data), digest) == digest
        assert await read_blob(store, namespace, digest) == data

    async def test_resume_after_restart(
        self, store: Store, namespace: str, restart: Restart
    ) -> None:
        """An ingest resumes at its stored offset after the store restarts."""
        data, digest = make_blob(300_000, seed=4)
        writer = await store.writer(namespace, "restart", len(data), digest)
        await writer.write(data[:123_457])
        store = await restart()
        status = await store.status(namespace, "restart")
        assert (status.offset, status.total) == (123_457, len(data))
        async with await store.writer(namespace, "restart", len(data), digest) as writer:
            assert writer.offset == 123_457
            await writer.write(data[123_457:])
            assert await writer.commit(len(data), digest) == digest
        assert await read_blob(store, namespace, digest) == data

    async def test_committed_blob_survives_restart(
        self, store: Store, namespace: str, restart: Restart
    ) -> None:
        """Committed blobs and their labels survive a restart."""
        data, _ = make_blob(10_000, seed=5)
        digest = await commit_blob(store, namespace, data, labels={"k": "v"})
        store = await restart()
        assert (await store.info(namespace, digest)).labels == {"k": "v"}
        assert await read_blob(store, namespace, digest) == data

    async def test_second_writer_is_unavailable(
        self, store: Store, namespace: str, other_namespace: str
    ) -> None:
        """One writer per ref and namespace: a second one is Unavailable."""
        first = await store.writer(namespace, "locked")
        with pytest.raises(errdefs.Unavailable, match="locked"):
            await store.writer(namespace, "locked")
        async with await store.writer(namespace, "not-locked"):
            pass
        async with await store.writer(other_namespace, "locked"):
            pass
        await first.write(b"abc")
        await first.close()
        await first.close()  # closing twice is harmless
        with pytest.raises(errdefs.FailedPrecondition):
            await first.write(b"more")
        async with await store.writer(namespace, "locked") as second:
            assert second.offset == 3

    async def test_sha512_blobs(self, store: Store, namespace: str) -> None:
        """A sha512 expected digest picks the algorithm; the blob is named by it."""
        data, _ = make_blob(70_000, seed=21)
        digest = "sha512:" + hashlib.sha512(data).hexdigest()
        async with await store.writer(namespace, "sha512", len(data), digest) as writer:
            assert await writer.digest() == "sha512:" + hashlib.sha512(b"").hexdigest()
            await writer.write(data)
            assert await writer.commit(len(data), digest) == digest
        assert (await store.info(namespace, digest)).size == len(data)
        assert await read_blob(store, namespace, digest) == data

    async def test_commit_size_mismatch(self, store: Store, namespace: str) -> None:
        """A wrong size fails the commit, closes the writer and keeps the ingest."""
        data, digest = make_blob(1000, seed=6)
        async with await store.writer(namespace, "size") as writer:
            await writer.write(data)
            with pytest.raises(errdefs.FailedPrecondition, match=r"1001.*1000|1000.*1001"):
                await writer.commit(len(data) + 1, digest)
            with pytest.raises(errdefs.FailedPrecondition):
                await writer.write(b"closed by the failed commit")
        with pytest.raises(errdefs.NotFound):
            await store.info(namespace, digest)
        assert (await store.status(namespace, "size")).offset == len(data)
        async with await store.writer(namespace, "size") as writer:
            assert await writer.commit(len(data), digest) == digest

    async def test_commit_digest_mismatch(self, store: Store, namespace: str) -> None:
        """A wrong digest fails the commit, naming both; nothing becomes visible."""
        data, actual = make_blob(1000, seed=7)
        _, expected = make_blob(1000, seed=8)
        async with await store.writer(namespace, "digest") as writer:
            await writer.write(data)
            with pytest.raises(errdefs.FailedPrecondition) as caught:
                await writer.commit(len(data), expected)
        assert expected in str(caught.value)
        assert actual in str(caught.value)
        for digest in (actual, expected):
            with pytest.raises(errdefs.NotFound):
                await store.info(namespace, digest)
        assert [info async for info in store.walk(namespace)] == []
        assert (await store.status(namespace, "digest")).offset == len(data)
        await store.abort(namespace, "digest")

    @pytest.mark.parametrize(
        "bad",
        ["sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256", "SHA256:" + "a" * 64],
    )
    async def test_malformed_digest(self, store: Store, namespace: str, bad: str) -> None:
        """Malformed digests are InvalidArgument, at open and at commit."""
        with pytest.raises(errdefs.InvalidArgument, match="digest"):
            await store.writer(namespace, "bad", expected=bad)
        async with await store.writer(namespace, "bad") as writer:
            await writer.write(b"data")
            with pytest.raises(errdefs.InvalidArgument):
                await writer.commit(4, bad)
        assert (await store.status(namespace, "bad")).offset == 4

    async def test_commit_existing_blob(self, store: Store, namespace: str) -> None:
        """Committing a digest the namespace has is AlreadyExists and drops the ingest."""
        data, digest = make_blob(2000, seed=9)
        await commit_blob(store, namespace, data, labels={"first": "yes"})
        before = await store.info(namespace, digest)
        with pytest.raises(errdefs.AlreadyExists):
            await store.writer(namespace, "again", expected=digest)
        async with await store.writer(namespace, "again") as writer:
            await writer.write(data)
            with pytest.raises(errdefs.AlreadyExists):
                await writer.commit(len(data), None, {"second": "yes"})
        assert await store.info(namespace, digest) == before
        assert await read_blob(store, namespace, digest) == data
        with pytest.raises(errdefs.NotFound):
            await store.status(namespace, "again")

    async def test_truncate(self, store: Store, namespace: str) -> None:
        """Truncating rewinds the offset and the digest."""
        data, digest = make_blob(3000, seed=10)
        async with await store.writer(namespace, "truncate") as writer:
            await writer.write(b"garbage" * 100)
            with pytest.raises(errdefs.OutOfRange):
                await writer.truncate(701)
            await writer.truncate(0)
            assert writer.offset == 0
            await writer.write(data[:2000] + b"garbage")
            await writer.truncate(2000)
            await writer.write(data[2000:])
            assert await writer.digest() == digest
            assert await writer.commit(len(data), digest) == digest

    async def test_abort(self, store: Store, namespace: str) -> None:
        """Abort removes a closed ingest; aborting it again is NotFound."""
        async with await store.writer(namespace, "abort") as writer:
            await writer.write(b"partial")
        await store.abort(namespace, "abort")
        with pytest.raises(errdefs.NotFound):
            await store.status(namespace, "abort")
        with pytest.raises(errdefs.NotFound):
            await store.abort(namespace, "abort")
        async with await store.writer(namespace, "abort") as writer:
            assert writer.offset == 0

    async def test_abort_cancels_open_writer(self, store: Store, namespace: str) -> None:
        """Abort cancels an open writer: its next write is NotFound."""
        writer = await store.writer(namespace, "abort-open")
        await writer.write(b"partial")
        await store.abort(namespace, "abort-open")
        with pytest.raises(errdefs.NotFound):
            await writer.write(b"more")
        await writer.close()
        async with await store.writer(namespace, "abort-open") as writer:
            assert writer.offset == 0

    async def test_list_statuses(self, store: Store, namespace: str, other_namespace: str) -> None:
        """ListStatuses lists the namespace's ingests, filtered by ref or expected."""
        _, digest = make_blob(10, seed=11)
        for ref in ("layer-1", "layer-2", "config"):
            async with await store.writer(namespace, ref, total=10) as writer:
                await writer.write(ref.encode())
        async with await store.writer(namespace, "with-expected", 10, digest):
            pass
        async with await store.writer(other_namespace, "elsewhere"):
            pass
        statuses = await store.list_statuses(namespace)
        assert sorted(status.ref for status in statuses) == [
            "config",
            "layer-1",
            "layer-2",
            "with-expected",
        ]
        layer = next(status for status in statuses if status.ref == "layer-1")
        assert (layer.offset, layer.total, layer.expected) == (7, 10, None)
        found = await store.list_statuses(namespace, ["ref~=^layer-"])
        assert sorted(status.ref for status in found) == ["layer-1", "layer-2"]
        found = await store.list_statuses(namespace, ["ref==config", f"expected=={digest}"])
        assert sorted(status.ref for status in found) == ["config", "with-expected"]
        with pytest.raises(errdefs.InvalidArgument):
            await store.list_statuses(namespace, ["ref=="])
