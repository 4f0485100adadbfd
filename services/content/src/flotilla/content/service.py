"""The content service's NATS endpoints: decode, call the store, convert. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from flotilla.common import errdefs
from flotilla.common.bus import Context, Empty, ServiceHost
from flotilla.common.bus.sessions import Sessions
from flotilla.content import api, convert
from flotilla.content.store import PathStore, PathWriter, ReaderAt

__all__ = ["ContentService"]


class ContentService:
    """Serves one node's store; writers and readers live in leased sessions."""

    def __init__(
        self,
        store: PathStore,
        writers: Sessions[PathWriter],
        readers: Sessions[ReaderAt],
        chunk: int,
    ) -> None:
        self.store = store
        self.writers = writers
        self.readers = readers
        self.chunk = chunk

    def register(self, host: ServiceHost) -> None:
        """Add every content endpoint to ``host``."""
        host.unary(api.INFO, self.info)
        host.unary(api.UPDATE, self.update)
        host.unary(api.DELETE, self.delete)
        host.unary(api.STATUS, self.status)
        host.unary(api.LIST_STATUSES, self.list_statuses)
        host.unary(api.ABORT, self.abort)
        host.unary(api.WRITER_OPEN, self.writer_open)
        host.unary(api.WRITTEN, self.written)
        host.unary(api.TRUNCATE, self.truncate)
        host.unary(api.WRITER_STAT, self.writer_stat)
        host.unary(api.COMMIT, self.commit)
        host.unary(api.WRITER_CLOSE, self.writer_close)
        host.unary(api.READER_OPEN, self.reader_open)
        host.unary(api.READER_CLOSE, self.reader_close)
        host.unary(api.PATH, self.path)
        host.unary(api.INGEST_PATH, self.ingest_path)
        host.unary(api.NAMESPACES, self.namespaces)
        host.items(api.LIST, self.list)
        host.source(api.READ, self.read)
        host.sink(api.WRITE, self.write)

    async def info(self, req: api.DigestRequest, ctx: Context) -> api.BlobInfo:
        return convert.blob_info(await self.store.info(ctx.namespace, req.digest))

    async def update(self, req: api.UpdateRequest, ctx: Context) -> api.BlobInfo:
        updated = await self.store.update(ctx.namespace, convert.info(req.info), req.fieldpaths)
        return convert.blob_info(updated)

    async def list(self, req: api.FilterRequest, ctx: Context) -> AsyncIterator[api.BlobInfo]:
        async for found in self.store.walk(ctx.namespace, req.filters):
            yield convert.blob_info(found)

    async def delete(self, req: api.DeleteRequest, ctx: Context) -> Empty:
        await self.store.delete(ctx.namespace, req.digest)
        return Empty()

    async def status(self, req: api.RefRequest, ctx: Context) -> api.IngestStatus:
        return convert.ingest_status(await self.store.status(ctx.namespace, req.ref))

    async def list_statuses(self, req: api.StatusFilter, ctx: Context) -> api.Statuses:
        found = await self.store.list_statuses(ctx.namespace, req.filters)
        return api.Statuses(statuses=tuple(convert.ingest_status(s) for s in found))

    async def abort(self, req: api.AbortRequest, ctx: Context) -> Empty:
        await self.store.abort(ctx.namespace, req.ref)
        return Empty()

    async def writer_open(self, req: api.WriterOpen, ctx: Context) -> api.WriterOpened:
        writer = await self.store.writer(ctx.namespace, req.ref, req.total, req.expected or None)
        status = convert.ingest_status(await writer.status())
        session = await self.writers.add(ctx.namespace, ctx.caller, writer)
        return api.WriterOpened(
            session=session,
            status=status,
            path=str(writer.data_path),
            file_id=convert.file_id(writer.data_identity()),
        )

    async def write(
        self, req: api.WriteRequest, ctx: Context, chunks: AsyncIterator[bytes]
    ) -> api.IngestStatus:
        with self.writers.use(ctx.namespace, req.session) as writer:
            if req.offset > writer.offset:
                raise errdefs.OutOfRange(f"write at {req.offset} past offset {writer.offset}")
            if req.offset < writer.offset:
                await writer.truncate(req.offset)
            async for chunk in chunks:
                await writer.write(chunk)
            return convert.ingest_status(await writer.status())

    async def written(self, req: api.Written, ctx: Context) -> api.IngestStatus:
        with self.writers.use(ctx.namespace, req.session) as writer:
            await writer.adopt(req.end)
            return convert.ingest_status(await writer.status())

    async def truncate(self, req: api.TruncateRequest, ctx: Context) -> api.IngestStatus:
        with self.writers.use(ctx.namespace, req.session) as writer:
            await writer.truncate(req.size)
            return convert.ingest_status(await writer.status())

    async def writer_stat(self, req: api.WriterSession, ctx: Context) -> api.WriterStat:
        with self.writers.use(ctx.namespace, req.session) as writer:
            status = convert.ingest_status(await writer.status())
            return api.WriterStat(status=status, digest=await writer.digest())

    async def commit(self, req: api.CommitRequest, ctx: Context) -> api.Committed:
        with self.writers.use(ctx.namespace, req.session) as writer:
            self.writers.pop(ctx.namespace, req.session)  # commit closes the writer, come what may
            digest = await writer.commit(req.size, req.expected or None, req.labels)
        return api.Committed(digest=digest)

    async def writer_close(self, req: api.WriterClose, ctx: Context) -> Empty:
        await self.writers.close(ctx.namespace, req.session)
        return Empty()

    async def reader_open(self, req: api.ReaderOpen, ctx: Context) -> api.ReaderOpened:
        reader = await self.store.reader_at(ctx.namespace, req.digest)
        session = await self.readers.add(ctx.namespace, ctx.caller, reader)
        return api.ReaderOpened(session=session, size=reader.size)

    async def read(self, req: api.ReadRequest, ctx: Context) -> AsyncIterator[bytes]:
        with self.readers.use(ctx.namespace, req.session) as reader:
            if req.offset < 0 or req.size < 0:
                raise errdefs.InvalidArgument(f"read at {req.offset} size {req.size}")
            if req.offset > reader.size:
                raise errdefs.OutOfRange(f"read at {req.offset} past the end ({reader.size})")
            end = reader.size if req.size == 0 else min(reader.size, req.offset + req.size)
            offset = req.offset
            while offset < end:
                chunk = await reader.read_at(offset, min(self.chunk, end - offset))
                offset += len(chunk)
                yield chunk

    async def reader_close(self, req: api.ReaderClose, ctx: Context) -> Empty:
        await self.readers.close(ctx.namespace, req.session)
        return Empty()

    async def path(self, req: api.PathRequest, ctx: Context) -> api.LocalPath:
        return api.LocalPath(path=str(await self.store.blob_path(ctx.namespace, req.digest)))

    async def ingest_path(self, req: api.IngestPathRequest, ctx: Context) -> api.IngestFileAt:
        path, identity = await self.store.ingest_path(ctx.namespace, req.ref)
        return api.IngestFileAt(path=str(path), file_id=convert.file_id(identity))

    async def namespaces(self, req: api.NamespacesRequest, _: Context) -> api.Namespaces:
        found = await self.store.namespaces(ingests=req.ingests)
        return api.Namespaces(namespaces=tuple(found))
