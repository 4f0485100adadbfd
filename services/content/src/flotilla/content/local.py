"""``LocalStore``: the node's content store on a local file system.

Layout under ``root``:

- ``blobs/<alg>/<hex>``: committed bytes, once per node whatever the namespaces
  (:mod:`~flotilla.content.local_blobs`);
- ``metadata.db``: SQLite index of which namespace sees which blob, with labels and times
  (:mod:`~flotilla.content.local_index`), and the store's event outbox;
- ``ingest/<sha256(namespace NUL ref)>/``: in-progress writes
  (:mod:`~flotilla.content.local_ingest`);
- ``trash/``: blobs on their way out.

Concurrency: one writer per ref, enforced in this process by a table of held refs and
across processes by ``flock``; index transactions (one database thread here,
``BEGIN IMMEDIATE`` across processes) order commits and deletes. Disk IO and hashing run in
worker threads. Several processes may share a root; start-up repairs what a crash left.

Events are staged in the index transaction of the change they announce, so a change and its
event are durable together (:mod:`flotilla.common.events.outbox`); a relay stores them in
JetStream. Unlike containerd, a change never fails because its event could not be published:
the event follows once JetStream is back, even after a crash.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, TypeVar

from flotilla.common import digests, namespaces
from flotilla.common.digests import Digest
from flotilla.common.errdefs import AlreadyExists, InvalidArgument, NotFound, Unavailable
from flotilla.common.events import TransactionalPublisher
from flotilla.common.files import make_dirs
from flotilla.common.filters import parse_all
from flotilla.common.lifecycle import AsyncClosing
from flotilla.common.settle import run_settled, settled
from flotilla.content.local_blobs import Blobs, database
from flotilla.content.local_handles import LocalReaderAt, LocalWriter
from flotilla.content.local_ingest import (
    Ingest,
    IngestMeta,
    ingest_dir,
    ingest_file,
    read_namespace,
    read_status,
    recover_ingests,
    remove_ingest,
)
from flotilla.content.store import Info, Status, adapt_info, adapt_status

__all__ = ["LocalStore"]

T = TypeVar("T")

_PAGE: Final = 256

_Key = tuple[str, str]


class LocalStore(AsyncClosing):
    """A :class:`~flotilla.content.store.Store` on local disk; see the module docstring.

    Construction repairs the root after a crash and blocks on disk IO: build it before
    serving, or with ``await LocalStore.open(...)``. Close it (or use ``async with``) to
    release the refs of writers still open.

    Args:
        root: the store's directory, created if missing; nothing else may write in it.
        publisher: where ``/content/create`` and ``/content/delete`` are staged, in the
            transactions of ``database(root)``: a :class:`~flotilla.common.events.relay.Relay`
            of that file, or a test's double.
    """

    def __init__(self, root: Path | str, publisher: TransactionalPublisher) -> None:
        self._root = Path(root)
        self._ingests = self._root / "ingest"
        make_dirs(self._ingests)
        self._blobs = Blobs(self._root, publisher)
        self._blobs.recover()
        recover_ingests(self._ingests)
        self._publisher = publisher
        # SQLite work and the file renames it orders, one at a time.
        self._db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="content-db")
        # Writers hash here while their worker thread writes.
        self._hashers = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="content-hash")
        # Refs held by a writer of this process; None while one is opened or aborted.
        self._refs: dict[_Key, LocalWriter | None] = {}
        self._closed = False

    @classmethod
    async def open(cls, root: Path | str, publisher: TransactionalPublisher) -> LocalStore:
        """Construct the store in a worker thread."""
        return await asyncio.to_thread(cls, root, publisher)

    @staticmethod
    def database(root: Path | str) -> Path:
        """The SQLite file of the store at ``root``, whose outbox a relay drains."""
        return database(Path(root))

    async def close(self) -> None:
        """Close open writers (keeping their ingests) and the index."""
        if self._closed:
            return
        self._closed = True
        for writer in [held for held in self._refs.values() if held is not None]:
            await writer.close()
        await run_settled(self._db, self._blobs.close)
        self._db.shutdown()
        self._hashers.shutdown()

    async def reader_at(self, namespace: str, digest: str) -> LocalReaderAt:
        """Open a committed blob for reading."""
        namespace, parsed = self._check(namespace), digests.parse(digest)
        fd, size = await self._in_db(self._blobs.open, namespace, parsed, discard=_close_fd)
        return LocalReaderAt(fd, size)

    async def blob_path(self, namespace: str, digest: str) -> Path:
        """Where the bytes of a blob ``namespace`` sees are, for readers on this node.

        Raises:
            NotFound: if the namespace has no such blob.
        """
        namespace, parsed = self._check(namespace), digests.parse(digest)
        await self._in_db(self._blobs.info, namespace, parsed)
        return self._blobs.path(parsed)

    async def writer(
        self, namespace: str, ref: str, total: int = 0, expected: str | None = None
    ) -> LocalWriter:
        """Start or resume the ingest ``ref``, holding its lock."""
        namespace = self._check(namespace)
        if not ref:
            raise InvalidArgument("ref must not be empty")
        if total < 0:
            raise InvalidArgument(f"negative total {total}")
        wanted = digests.parse(expected) if expected else None
        if wanted is not None and await self._visible(namespace, wanted):
            raise AlreadyExists(f"content {wanted}")
        key = (namespace, ref)
        if key in self._refs:
            raise Unavailable(f"ref {ref} locked")
        self._refs[key] = None
        try:
            ingest = await self._open_ingest(namespace, ref, total, wanted)
        except BaseException:
            del self._refs[key]
            raise
        release = functools.partial(self._release, key)
        writer = LocalWriter(ingest, self._commit, release, self._hashers)
        self._refs[key] = writer
        if self._closed:  # closed while the ingest was being opened
            await writer.close()
            raise Unavailable("content store is closed")
        return writer

    async def status(self, namespace: str, ref: str) -> Status:
        """The status of the ingest ``ref``."""
        directory = ingest_dir(self._ingests, self._check(namespace), ref)
        status = await asyncio.to_thread(read_status, directory, namespace, ref)
        if status is None:
            raise NotFound(f"ingest ref {ref!r}")
        return status

    async def ingest_path(self, namespace: str, ref: str) -> tuple[Path, tuple[int, int]]:
        """The data file of the ingest ``ref`` and its device and inode, for readers on this node.

        Raises:
            NotFound: if the namespace has no such ingest.
        """
        directory = ingest_dir(self._ingests, self._check(namespace), ref)
        found = await asyncio.to_thread(ingest_file, directory, namespace, ref)
        if found is None:
            raise NotFound(f"ingest ref {ref!r}")
        return found

    async def list_statuses(self, namespace: str, filters: Sequence[str] = ()) -> list[Status]:
        """The namespace's ingests that match ``filters``, by ref."""
        namespace, matcher = self._check(namespace), parse_all(filters)
        statuses = await asyncio.to_thread(self._scan_statuses, namespace)
        return [status for status in statuses if matcher.match(adapt_status(status))]

    async def abort(self, namespace: str, ref: str) -> None:
        """Remove the ingest ``ref``, cancelling this process's writer on it."""
        key = (self._check(namespace), ref)
        if key in self._refs and self._refs[key] is None:
            raise Unavailable(f"ref {ref} locked")
        holder = self._refs.get(key)
        self._refs[key] = None
        try:
            if holder is not None:
                await holder.cancel()
            await run_settled(None, remove_ingest, ingest_dir(self._ingests, *key), ref)
        finally:
            del self._refs[key]

    async def info(self, namespace: str, digest: str) -> Info:
        """The blob's info."""
        namespace, parsed = self._check(namespace), digests.parse(digest)
        return await self._in_db(self._blobs.info, namespace, parsed)

    async def update(self, namespace: str, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Change the blob's labels along ``fieldpaths``."""
        namespace = self._check(namespace)
        digests.parse(info.digest)
        return await self._in_db(self._blobs.update, namespace, info, tuple(fieldpaths))

    async def walk(self, namespace: str, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        """The namespace's blobs matching ``filters``, by digest, a page at a time."""
        namespace, matcher = self._check(namespace), parse_all(filters)
        after = ""
        while True:
            page = await self._in_db(self._blobs.page, namespace, after, _PAGE)
            for info in page:
                if matcher.match(adapt_info(info)):
                    yield info
            if len(page) < _PAGE:
                return
            after = page[-1].digest

    async def delete(self, namespace: str, digest: str) -> None:
        """Remove the blob from the namespace, and its file once no namespace sees it."""
        namespace, parsed = self._check(namespace), digests.parse(digest)
        await settled(self._delete(namespace, parsed))

    async def namespaces(self, *, ingests: bool = False) -> list[str]:
        """The namespaces that see some blob (or, with ``ingests``, have an ingest), sorted."""
        found = set(await self._in_db(self._blobs.namespaces))
        if ingests:
            found.update(await asyncio.to_thread(self._scan_ingest_namespaces))
        return sorted(found)

    async def _delete(self, namespace: str, digest: Digest) -> None:
        row = await self._in_db(self._blobs.delete, namespace, digest)
        await self._publisher.committed(row)

    async def _commit(self, ingest: Ingest, digest: Digest, labels: Mapping[str, str]) -> str:
        """Record a verified ingest as a blob with its event, drop the ingest, relay the event.

        The writer runs this :func:`settled`: once begun, it ends.
        """
        namespace = ingest.meta.namespace
        try:
            info, row = await self._in_db(
                self._blobs.commit, namespace, digest, ingest.offset, labels, ingest.data_path
            )
        except AlreadyExists:
            # containerd: AlreadyExists aborts the ingest. Other failures keep it for a retry.
            await run_settled(None, ingest.remove)
            raise
        await run_settled(None, ingest.remove)
        await self._publisher.committed(row)
        return info.digest

    async def _open_ingest(
        self, namespace: str, ref: str, total: int, wanted: Digest | None
    ) -> Ingest:
        expected = str(wanted) if wanted else None
        meta = IngestMeta(
            namespace=namespace, ref=ref, total=total, expected=expected, started_at=time.time_ns()
        )
        directory = ingest_dir(self._ingests, namespace, ref)
        return await run_settled(None, Ingest.open, directory, meta, discard=Ingest.close)

    async def _visible(self, namespace: str, digest: Digest) -> bool:
        try:
            await self._in_db(self._blobs.info, namespace, digest)
        except NotFound:
            return False
        return True

    def _scan_statuses(self, namespace: str) -> list[Status]:
        found = (read_status(entry, namespace) for entry in self._ingests.iterdir())
        return sorted((status for status in found if status), key=lambda status: status.ref)

    def _scan_ingest_namespaces(self) -> set[str]:
        found = (read_namespace(entry) for entry in self._ingests.iterdir())
        return {namespace for namespace in found if namespace}

    def _release(self, key: _Key, writer: LocalWriter) -> None:
        if self._refs.get(key) is writer:
            del self._refs[key]

    def _check(self, namespace: str) -> str:
        if self._closed:
            raise Unavailable("content store is closed")
        return namespaces.validate(namespace)

    async def _in_db(
        self,
        fn: Callable[..., T],
        *args: object,
        discard: Callable[[T], object] | None = None,
    ) -> T:
        if self._closed:
            raise Unavailable("content store is closed")
        return await run_settled(self._db, fn, *args, discard=discard)


def _close_fd(opened: tuple[int, int]) -> None:
    os.close(opened[0])
