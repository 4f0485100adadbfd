"""Conformance cases for blobs: info, labels, filters, reads, isolation, delete, events."""

from __future__ import annotations

import time

import pytest

from flotilla.common import digests, errdefs
from flotilla.content.events import TOPIC_CREATE, TOPIC_DELETE, ContentCreate, ContentDelete
from flotilla.content.helpers import iter_range, read_blob
from flotilla.content.store import Info, Store
from flotilla.content.testsuite.support import EventLog, commit_blob, expect_event, make_blob

__all__ = ["BlobCases"]

GIB = 1 << 30


class BlobCases:
    """Provider and Manager behaviour, namespaces and events."""

    async def test_labels(self, store: Store, namespace: str) -> None:
        """Update replaces all labels, or sets and removes single ones by field path."""
        gc = {"containerd.io/gc.root": "now", "containerd.io/gc.ref.content.l.0": "sha256:x"}
        digest = await commit_blob(store, namespace, b"labelled", labels={"a": "1", **gc})
        created = await store.info(namespace, digest)
        assert created.labels == {"a": "1", **gc}

        updated = await store.update(namespace, Info(digest=digest, labels={"b": "2", "a": "x"}))
        assert updated.labels == {"b": "2", "a": "x"}
        assert updated.created_at == created.created_at
        assert updated.updated_at >= created.updated_at
        assert await store.info(namespace, digest) == updated

        request = Info(digest=digest, labels={"c": "3", "b": "ignored"})
        updated = await store.update(namespace, request, ["labels.c", "labels.a"])
        assert updated.labels == {"b": "2", "c": "3"}
        updated = await store.update(namespace, Info(digest=digest, labels={"d": "4"}), ["labels"])
        assert (await store.info(namespace, digest)).labels == {"d": "4"}
        updated = await store.update(namespace, Info(digest=digest, labels={"d": ""}), ["labels.d"])
        assert updated.labels == {}

    async def test_update_errors(self, store: Store, namespace: str) -> None:
        """Update rejects immutable fields, oversized labels and unknown blobs."""
        digest = await commit_blob(store, namespace, b"update errors")
        with pytest.raises(errdefs.InvalidArgument):
            await store.update(namespace, Info(digest=digest, size=1), ["size"])
        with pytest.raises(errdefs.InvalidArgument):
            await store.update(namespace, Info(digest=digest, labels={"k": "v" * 4096}))
        with pytest.raises(errdefs.NotFound):
            await store.update(namespace, Info(digest=digests.digest_of(b"absent")))
        with pytest.raises(errdefs.InvalidArgument):
            await store.update(namespace, Info(digest="sha256:nope"))
        assert (await store.info(namespace, digest)).labels == {}

    async def test_walk_filters(self, store: Store, namespace: str) -> None:
        """Walk filters on digest, size and labels, ANDing selectors and ORing filters."""
        one = await commit_blob(store, namespace, b"one", labels={"kind": "layer", "n": "1"})
        two = await commit_blob(store, namespace, b"two!", labels={"kind": "config", "a.b": "x"})
        gc = {"containerd.io/gc.root": "yes"}
        three = await commit_blob(store, namespace, b"three", labels=gc)

        async def walk(*filters: str) -> set[str]:
            return {info.digest async for info in store.walk(namespace, filters)}

        assert await walk() == {one, two, three}
        assert await walk(f"digest=={two}") == {two}
        assert await walk("labels.kind==layer") == {one}
        assert await walk("labels.kind!=layer") == {two, three}
        assert await walk("labels.kind") == {one, two}
        assert await walk("labels.kind~=^c.nf") == {two}
        assert await walk('labels."a.b"==x') == {two}
        assert await walk("labels.a.b==x") == {two}
        assert await walk('labels."containerd.io/gc.root"') == {three}
        assert await walk("size==4") == {two}
        assert await walk("labels.kind==layer,labels.n==2") == set()
        assert await walk("labels.kind==layer", "size==5") == {one, three}
        for malformed in ("labels.", "labels.kind==", "labels.containerd.io/gc.root", "a=b"):
            with pytest.raises(errdefs.InvalidArgument):
                await walk(malformed)

    async def test_read_at(self, store: Store, namespace: str) -> None:
        """Ranged reads at odd offsets; past the end is OutOfRange."""
        data, _ = make_blob(1_000_003, seed=20)
        digest = await commit_blob(store, namespace, data)
        async with await store.reader_at(namespace, digest) as reader:
            assert reader.size == len(data)
            assert await reader.read_at(0, 1) == data[:1]
            assert await reader.read_at(7, 13) == data[7:20]
            assert await reader.read_at(999_999, 10) == data[999_999:]
            assert await reader.read_at(len(data), 10) == b""
            assert await reader.read_at(5, 0) == b""
            with pytest.raises(errdefs.OutOfRange):
                await reader.read_at(len(data) + 1, 1)
            with pytest.raises(errdefs.InvalidArgument):
                await reader.read_at(-1, 1)
            pieces = [piece async for piece in iter_range(reader, 333_333, 500_001, 65_537)]
            assert b"".join(pieces) == data[333_333:833_334]

    async def test_missing_and_invalid(self, store: Store, namespace: str) -> None:
        """Unknown objects are NotFound; malformed names are InvalidArgument."""
        absent = digests.digest_of(b"absent")
        with pytest.raises(errdefs.NotFound):
            await store.info(namespace, absent)
        with pytest.raises(errdefs.NotFound):
            await store.reader_at(namespace, absent)
        with pytest.raises(errdefs.NotFound):
            await store.delete(namespace, absent)
        with pytest.raises(errdefs.NotFound):
            await store.status(namespace, "no-such-ref")
        assert [info async for info in store.walk(namespace)] == []
        assert await store.list_statuses(namespace) == []
        for bad in ("", "a/b", "-lead", "trail.", "x" * 77, "new\nline"):
            with pytest.raises(errdefs.InvalidArgument):
                await store.info(bad, absent)
        with pytest.raises(errdefs.InvalidArgument):
            await store.writer(namespace, "")

    async def test_namespace_isolation(
        self, store: Store, namespace: str, other_namespace: str
    ) -> None:
        """A namespace sees only its own blobs; sharing bytes means writing them."""
        data, digest = make_blob(20_000, seed=21)
        await commit_blob(store, namespace, data, labels={"in": "a"})
        with pytest.raises(errdefs.NotFound):
            await store.info(other_namespace, digest)
        with pytest.raises(errdefs.NotFound):
            await store.reader_at(other_namespace, digest)
        assert [info async for info in store.walk(other_namespace)] == []
        async with await store.writer(other_namespace, "copy", len(data), digest) as writer:
            assert writer.offset == 0  # isolated: the bytes must be written again
            await writer.write(data[:-1] + b"\0")
            with pytest.raises(errdefs.FailedPrecondition):
                await writer.commit(len(data), digest)
        await commit_blob(store, other_namespace, data, ref="copy-2", labels={"in": "b"})
        assert (await store.info(other_namespace, digest)).labels == {"in": "b"}
        assert (await store.info(namespace, digest)).labels == {"in": "a"}
        await store.delete(namespace, digest)
        with pytest.raises(errdefs.NotFound):
            await store.info(namespace, digest)
        assert await read_blob(store, other_namespace, digest) == data

    async def test_namespaces(self, store: Store, namespace: str, other_namespace: str) -> None:
        """The namespaces with a blob, sorted; one goes with its last blob; ingests on request."""
        both = sorted([namespace, other_namespace])
        assert await store.namespaces() == []
        shared = await commit_blob(store, namespace, b"in both")
        assert await store.namespaces() == [namespace]
        await commit_blob(store, other_namespace, b"in both")
        own = await commit_blob(store, other_namespace, b"only in the other")
        assert await store.namespaces() == both
        await store.delete(other_namespace, own)
        assert await store.namespaces() == both
        await store.delete(namespace, shared)
        assert await store.namespaces() == [other_namespace]
        async with await store.writer(namespace, "pending") as writer:
            await writer.write(b"not committed")
        assert await store.namespaces() == [other_namespace]
        assert await store.namespaces(ingests=True) == both
        await store.abort(namespace, "pending")
        await store.delete(other_namespace, shared)
        assert await store.namespaces(ingests=True) == []

    async def test_delete_while_reading(self, store: Store, namespace: str) -> None:
        """Delete hides a blob at once, but an open reader still reads it all."""
        data, _ = make_blob(3_000_000, seed=22)
        digest = await commit_blob(store, namespace, data)
        reader = await store.reader_at(namespace, digest)
        head = await reader.read_at(0, 1000)
        await store.delete(namespace, digest)
        with pytest.raises(errdefs.NotFound):
            await store.info(namespace, digest)
        with pytest.raises(errdefs.NotFound):
            await store.reader_at(namespace, digest)
        with pytest.raises(errdefs.NotFound):
            await store.delete(namespace, digest)
        rest = b"".join([piece async for piece in iter_range(reader, 1000)])
        await reader.close()
        assert head + rest == data
        assert await commit_blob(store, namespace, data) == digest

    async def test_events(self, store: Store, namespace: str, events: EventLog) -> None:
        """Commit and delete are announced after the fact; failed commits are not."""
        _, wrong = make_blob(10, seed=23)
        async with await store.writer(namespace, "fails") as writer:
            await writer.write(b"not that")
            with pytest.raises(errdefs.FailedPrecondition):
                await writer.commit(0, wrong)
        digest = await commit_blob(store, namespace, b"announced")
        created = ContentCreate(digest=digest, size=len(b"announced"))
        await expect_event(events, namespace, TOPIC_CREATE, created)
        await store.delete(namespace, digest)
        await expect_event(events, namespace, TOPIC_DELETE, ContentDelete(digest=digest))
        mine = [seen for seen in events.seen() if getattr(seen[2], "digest", "") in (digest, wrong)]
        deleted = ContentDelete(digest=digest)
        assert mine == [(namespace, TOPIC_CREATE, created), (namespace, TOPIC_DELETE, deleted)]

    @pytest.mark.slow
    async def test_one_gib_blob(self, store: Store, namespace: str) -> None:
        """A 1 GiB blob streams in and out in chunks."""
        block, _ = make_blob(1 << 20, seed=24)
        hashed = digests.hasher()
        started = time.monotonic()
        async with await store.writer(namespace, "gib", total=GIB) as writer:
            for index in range(GIB // len(block)):
                chunk = index.to_bytes(8, "big") + block[8:]
                hashed.update(chunk)
                await writer.write(chunk)
            digest = str(digests.Digest.of(hashed))
            assert await writer.commit(GIB, digest) == digest
        written = time.monotonic()
        check = digests.hasher()
        async with await store.reader_at(namespace, digest) as reader:
            async for piece in iter_range(reader):
                check.update(piece)
        read = time.monotonic()
        assert str(digests.Digest.of(check)) == digest
        print(
            f"\n1 GiB: ingest+commit {_rate(written - started)}, read+hash {_rate(read - written)}"
        )


def _rate(seconds: float) -> str:
    return f"{seconds:.2f}s ({GIB / seconds / 1e6:.0f} MB/s)"
