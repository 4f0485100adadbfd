"""A :class:`~flotilla.content.store.Store` that talks to a node's content service over the bus.

A writer's bytes ride one upload stream that stays open across ``write()`` calls, or, on the
service's own node, go straight into the ingest's file (:mod:`flotilla.content.proxy_file`);
reads are ranged download streams from a reader session.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final, TypeVar

from flotilla.common import errdefs
from flotilla.common.bus import Bus, Unary
from flotilla.common.bus.stream import DEFAULT_IDLE_TIMEOUT, coalesce
from flotilla.common.bus.upload import Upload
from flotilla.common.lifecycle import AsyncClosing
from flotilla.content import api, convert
from flotilla.content.proxy_file import IngestFile, copy_reporting
from flotilla.content.store import Info, Status

__all__ = ["ContentProxy", "ProxyReader", "ProxyWriter"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")

COPY_BLOCK: Final = 1 << 20
"""What :meth:`ProxyWriter.copy_from` joins small chunks into."""


class _Remote:
    """Calls to one node's content service in one namespace."""

    def __init__(self, bus: Bus, node: str | None, namespace: str, idle_timeout: float) -> None:
        self.bus = bus
        self.node = node
        self.namespace = namespace
        self.idle_timeout = idle_timeout

    def stream_options(self) -> dict[str, Any]:
        """Keyword arguments for a download or upload of this remote."""
        return {"namespace": self.namespace, "node": self.node, "idle_timeout": self.idle_timeout}

    async def call(self, method: Unary[Req, Resp], request: Req) -> Resp:
        return await self.bus.call(method, request, namespace=self.namespace, node=self.node)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class ProxyReader(AsyncClosing):
    """A reader session on the service; reads keep working if the blob is deleted meanwhile."""

    def __init__(self, remote: _Remote, session: str, size: int) -> None:
        self._remote = remote
        self._session = session
        self._size = size
        self._closed = False

    @property
    def size(self) -> int:
        """The blob's length in bytes."""
        return self._size

    async def chunks(self, offset: int = 0, size: int = 0) -> AsyncIterator[bytes]:
        """Stream ``size`` bytes (0: to the end) from ``offset``, chunk by chunk."""
        request = api.ReadRequest(session=self._session, offset=offset, size=size)
        remote = self._remote
        async with remote.bus.download(api.READ, request, **remote.stream_options()) as chunks:
            async for chunk in chunks:
                yield chunk

    async def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``."""
        if size == 0 and offset <= self._size:
            return b""
        return b"".join([chunk async for chunk in self.chunks(offset, size)])

    async def close(self) -> None:
        """End the reader session."""
        if not self._closed:
            self._closed = True
            await self._remote.call(api.READER_CLOSE, api.ReaderClose(session=self._session))


class ProxyWriter(AsyncClosing):
    """A writer session on the service, holding the ref's lock until closed or committed.

    Writes ride one upload stream that stays open between :meth:`write` calls; each call
    returns once the service has written its bytes, as containerd's Write does. Any other
    call first ends that stream. Given the ingest's ``file`` (same node), writes go there
    instead and the service is told how far they got.
    """

    def __init__(
        self, remote: _Remote, session: str, status: Status, file: IngestFile | None = None
    ) -> None:
        self._remote = remote
        self._session = session
        self._ref = status.ref
        self._offset = status.offset
        self._file = file
        self._stream: tuple[AsyncExitStack, Upload[api.IngestStatus]] | None = None
        self._done = False

    @property
    def ref(self) -> str:
        """The ingest's ref."""
        return self._ref

    @property
    def offset(self) -> int:
        """Bytes written so far."""
        return self._offset

    def _check_open(self) -> None:
        if self._done:
            raise errdefs.FailedPrecondition(f"writer for {self._ref} is closed")

    async def _upload(self) -> Upload[api.IngestStatus]:
        self._check_open()
        if self._stream is None:
            stack, remote = AsyncExitStack(), self._remote
            request = api.WriteRequest(session=self._session, offset=self._offset)
            upload = await stack.enter_async_context(
                remote.bus.open_upload(api.WRITE, request, **remote.stream_options())
            )
            self._stream = (stack, upload)
        return self._stream[1]

    @property
    def same_node(self) -> bool:
        """Whether the bytes go straight into the ingest's file rather than over the bus."""
        return self._file is not None

    async def write(self, data: bytes) -> None:
        """Append ``data``; returns once the service has written it."""
        if self._file is not None:
            await self._copy_into_file(self._file, _one(data))
            return
        upload = await self._upload()
        try:
            await upload.send(data)
            await upload.sync()
        except BaseException:
            await self._resync()
            raise
        self._offset += len(data)

    async def copy_from(self, chunks: AsyncIterator[bytes]) -> None:
        """Append every chunk, streaming them all before waiting for the service once.

        Unlike a loop of :meth:`write` calls, which each wait until the service has written
        their bytes, the stream here stays full from the first chunk to the last. Small chunks
        are joined into blocks first: each block costs the service (or this caller, on the same
        node) one trip to a worker thread.
        """
        chunks = coalesce(chunks, COPY_BLOCK)
        if self._file is not None:
            await self._copy_into_file(self._file, chunks)
            return
        upload = await self._upload()
        try:
            async for chunk in chunks:
                await upload.send(chunk)
                self._offset += len(chunk)
            await upload.sync()
        except BaseException:
            await self._resync()
            raise

    async def _copy_into_file(self, file: IngestFile, chunks: AsyncIterator[bytes]) -> None:
        self._check_open()
        try:
            self._offset = await copy_reporting(file, chunks, self._offset, self._report)
        except BaseException:
            await self._resync()
            raise

    async def _resync(self) -> None:
        """After a failed write: end the stream, and take the service's word for the offset.

        Bytes may have been sent (or put in the file) that the service never took in.
        """
        with contextlib.suppress(errdefs.ErrdefsError):
            await self._settle()  # the write's own error is the one the caller sees
        with contextlib.suppress(errdefs.ErrdefsError):
            self._offset = (await self._stat()).status.offset

    async def _report(self, end: int) -> int:
        request = api.Written(session=self._session, end=end)
        return (await self._remote.call(api.WRITTEN, request)).offset

    async def _settle(self) -> None:
        """End the open upload stream, if any, and take the service's word for the offset."""
        if self._stream is None:
            return
        (stack, upload), self._stream = self._stream, None
        async with stack:
            self._offset = (await upload.finish()).offset

    async def truncate(self, size: int) -> None:
        """Drop everything from ``size`` on."""
        self._check_open()
        await self._settle()
        request = api.TruncateRequest(session=self._session, size=size)
        self._offset = (await self._remote.call(api.TRUNCATE, request)).offset

    async def _stat(self) -> api.WriterStat:
        self._check_open()
        await self._settle()
        return await self._remote.call(api.WRITER_STAT, api.WriterSession(session=self._session))

    async def digest(self) -> str:
        """The digest of the bytes written so far."""
        return (await self._stat()).digest

    async def status(self) -> Status:
        """The ingest's status."""
        return convert.status((await self._stat()).status)

    async def commit(
        self, size: int = 0, expected: str | None = None, labels: Mapping[str, str] | None = None
    ) -> str:
        """Verify and publish the ingest; always ends the session."""
        self._check_open()
        try:
            await self._settle()
        except BaseException:
            await self.close()
            raise
        self._done = True
        self._close_file()
        request = api.CommitRequest(
            session=self._session, size=size, expected=expected or "", labels=dict(labels or {})
        )
        return (await self._remote.call(api.COMMIT, request)).digest

    async def close(self) -> None:
        """End the session, keeping the ingest for a later resume."""
        if self._done:
            return
        self._done = True
        try:
            await self._settle()
        finally:
            self._close_file()
            await self._remote.call(api.WRITER_CLOSE, api.WriterClose(session=self._session))

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()


class ContentProxy:
    """The content :class:`~flotilla.content.store.Store` of ``node``, over the bus.

    Args:
        bus: the connection to use.
        node: whose content service to talk to; default the bus's own node.
        idle_timeout: how long a read or write stream may be silent before either side gives
            up (and the service releases the writer's ref).
        same_node_files: let writers on the service's node put their bytes straight into the
            ingest's file when they can reach it; ``False`` sends every byte over the bus.
    """

    def __init__(
        self,
        bus: Bus,
        node: str | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        *,
        same_node_files: bool = True,
    ) -> None:
        self.bus = bus
        self.node = node
        self.idle_timeout = idle_timeout
        self.same_node_files = same_node_files and node in (None, bus.node)

    def _remote(self, namespace: str) -> _Remote:
        return _Remote(self.bus, self.node, namespace, self.idle_timeout)

    async def info(self, namespace: str, digest: str) -> Info:
        reply = await self._remote(namespace).call(api.INFO, api.DigestRequest(digest=digest))
        return convert.info(reply)

    async def update(self, namespace: str, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        request = api.UpdateRequest(info=convert.blob_info(info), fieldpaths=tuple(fieldpaths))
        return convert.info(await self._remote(namespace).call(api.UPDATE, request))

    async def walk(self, namespace: str, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        request = api.FilterRequest(filters=tuple(filters))
        options = self._remote(namespace).stream_options()
        items = self.bus.items(api.LIST, request, **options)
        async with contextlib.aclosing(items) as found:
            async for info in found:
                yield convert.info(info)

    async def delete(self, namespace: str, digest: str) -> None:
        await self._remote(namespace).call(api.DELETE, api.DeleteRequest(digest=digest))

    async def namespaces(self, *, ingests: bool = False) -> list[str]:
        """The namespaces the node holds blobs (with ``ingests``: or ingests) in, sorted."""
        request = api.NamespacesRequest(ingests=ingests)
        reply = await self.bus.call(api.NAMESPACES, request, node=self.node)
        return list(reply.namespaces)

    async def reader_at(self, namespace: str, digest: str) -> ProxyReader:
        remote = self._remote(namespace)
        opened = await remote.call(api.READER_OPEN, api.ReaderOpen(digest=digest))
        return ProxyReader(remote, opened.session, opened.size)

    async def writer(
        self, namespace: str, ref: str, total: int = 0, expected: str | None = None
    ) -> ProxyWriter:
        remote = self._remote(namespace)
        request = api.WriterOpen(ref=ref, total=total, expected=expected or "")
        opened = await remote.call(api.WRITER_OPEN, request)
        status = convert.status(opened.status)
        file = await IngestFile.reach(opened.path, opened.file_id) if self.same_node_files else None
        return ProxyWriter(remote, opened.session, status, file)

    async def status(self, namespace: str, ref: str) -> Status:
        reply = await self._remote(namespace).call(api.STATUS, api.RefRequest(ref=ref))
        return convert.status(reply)

    async def list_statuses(self, namespace: str, filters: Sequence[str] = ()) -> list[Status]:
        request = api.StatusFilter(filters=tuple(filters))
        reply = await self._remote(namespace).call(api.LIST_STATUSES, request)
        return [convert.status(s) for s in reply.statuses]

    async def abort(self, namespace: str, ref: str) -> None:
        await self._remote(namespace).call(api.ABORT, api.AbortRequest(ref=ref))

    async def local_path(self, namespace: str, digest: str) -> Path:
        """Where the blob lies on the service's disk, for a reader on the same node.

        The service checks that the namespace sees the blob first. Open the file read-only
        and never write to it; a delete unlinks it, so open it before relying on it.
        """
        reply = await self._remote(namespace).call(api.PATH, api.PathRequest(digest=digest))
        return Path(reply.path)

    async def ingest_path(self, namespace: str, ref: str) -> tuple[Path, str]:
        """Where the ingest ``ref``'s data file lies on the service's disk, and its ``file_id``.

        For a reader on the same node that follows the bytes as they arrive: open the file
        read-only, check that its ``<device>:<inode>`` is ``file_id`` (an ingest started afresh
        has a new file), and never write to it.

        Raises:
            NotFound: if the namespace has no such ingest.
        """
        request = api.IngestPathRequest(ref=ref)
        reply = await self._remote(namespace).call(api.INGEST_PATH, request)
        return Path(reply.path), reply.file_id
