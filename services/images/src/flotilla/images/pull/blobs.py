"""Blobs from a registry into a node's content store: verified, resumable, fetched once.

Each blob is written under containerd's ingest ref (``layer-<digest>``, ...), so the content
service's lock on a ref serialises every writer of one blob, in any process on any node: a
second pull of the same blob waits for the lock, then finds the blob committed and fetches
nothing. An interrupted download resumes from the ingest's offset (HTTP Range). The content
store verifies size and digest at commit; a blob that fails is aborted, never kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Final, Protocol, runtime_checkable

from flotilla.common import errdefs
from flotilla.content.store import Store, Writer
from flotilla.images import oci
from flotilla.images.pull.progress import State, Tracker

__all__ = ["BlobSource", "add_labels", "fetch_blob", "open_writer", "store_document"]

ATTEMPTS: Final = 5
"""Downloads of one blob that may fail (each resumes where the last stopped)."""
LOCK_POLL: Final = (0.02, 0.5)
"""First and longest wait between tries for a ref another writer holds."""


class BlobSource(Protocol):
    """Where blobs come from (a registry repository)."""

    def fetch(
        self, desc: oci.Descriptor, offset: int = 0
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The blob's bytes from ``offset``."""
        ...


@runtime_checkable
class _Copy(Protocol):
    async def copy_from(self, chunks: AsyncIterator[bytes]) -> None: ...


async def open_writer(
    store: Store, namespace: str, desc: oci.Descriptor, waiting: Callable[[], None]
) -> Writer | None:
    """The blob's writer, once no other writer holds its ref; ``None`` if it is committed.

    ``waiting`` is called once if another writer holds the ref.
    """
    delay, longest = LOCK_POLL
    told = False
    while True:
        try:
            return await store.writer(namespace, oci.ref_key(desc), desc.size, desc.digest)
        except errdefs.AlreadyExists:
            return None
        except errdefs.Unavailable:  # another pull is writing this very blob
            if not told:
                waiting()
                told = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)


async def fetch_blob(
    store: Store,
    namespace: str,
    source: BlobSource,
    desc: oci.Descriptor,
    tracker: Tracker,
    labels: Mapping[str, str] | None = None,
) -> bool:
    """Make sure blob ``desc`` is committed in the namespace; whether it was fetched.

    Raises:
        FailedPrecondition: the registry's bytes do not match the descriptor (the ingest is
            aborted).
        Unavailable: the registry failed ``ATTEMPTS`` times.
    """

    def waiting() -> None:
        tracker.report(desc.digest, desc.media_type, State.WAITING, 0, desc.size)

    failures: list[errdefs.ErrdefsError] = []
    while len(failures) < ATTEMPTS:
        writer = await open_writer(store, namespace, desc, waiting)
        if writer is None:
            tracker.report(desc.digest, desc.media_type, State.EXISTS, desc.size, desc.size)
            return False
        try:
            async with writer:
                await _download(writer, source, desc, tracker)
                await _commit(store, namespace, writer, desc, tracker, labels)
                return True
        except errdefs.Unavailable as err:  # dropped: the next round resumes from the offset
            failures.append(err)
        except errdefs.ErrdefsError:
            if writer.offset == 0:  # nothing to resume: leave no empty ingest behind
                with contextlib.suppress(errdefs.ErrdefsError):
                    await store.abort(namespace, writer.ref)
            raise
    raise errdefs.Unavailable(
        f"blob {desc.digest}: {len(failures)} attempts failed: {failures[-1]}"
    )


async def _download(
    writer: Writer, source: BlobSource, desc: oci.Descriptor, tracker: Tracker
) -> None:
    if writer.offset > desc.size:
        await writer.truncate(0)
    if writer.offset == desc.size:
        return
    tracker.report(desc.digest, desc.media_type, State.DOWNLOADING, writer.offset, desc.size)

    async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        done = writer.offset
        async for chunk in chunks:
            done += len(chunk)
            tracker.report(desc.digest, desc.media_type, State.DOWNLOADING, done, desc.size)
            yield chunk

    async with source.fetch(desc, writer.offset) as chunks:
        if isinstance(writer, _Copy):
            await writer.copy_from(counted(chunks))
        else:
            async for chunk in counted(chunks):
                await writer.write(chunk)


async def _commit(
    store: Store,
    namespace: str,
    writer: Writer,
    desc: oci.Descriptor,
    tracker: Tracker,
    labels: Mapping[str, str] | None,
) -> None:
    tracker.report(desc.digest, desc.media_type, State.VERIFYING, desc.size, desc.size)
    try:
        await writer.commit(desc.size, desc.digest, labels)
    except errdefs.AlreadyExists:
        pass
    except errdefs.FailedPrecondition as err:  # wrong bytes: never resume from them
        with contextlib.suppress(errdefs.ErrdefsError):
            await store.abort(namespace, writer.ref)
        tracker.report(desc.digest, desc.media_type, State.FAILED, desc.size, desc.size)
        raise errdefs.FailedPrecondition(
            f"blob {desc.digest} ({desc.media_type}): {err.message}"
        ) from None
    tracker.report(desc.digest, desc.media_type, State.DONE, desc.size, desc.size)


async def store_document(
    store: Store,
    namespace: str,
    desc: oci.Descriptor,
    data: bytes,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Commit a verified manifest, index or config (``data``) with ``labels``.

    An existing blob gets the labels added instead.
    """
    writer = await open_writer(store, namespace, desc, lambda: None)
    if writer is None:
        await add_labels(store, namespace, desc.digest, labels)
        return
    async with writer:
        if writer.offset:
            await writer.truncate(0)
        await writer.write(data)
        try:
            await writer.commit(desc.size, desc.digest, labels)
        except errdefs.AlreadyExists:
            await add_labels(store, namespace, desc.digest, labels)


async def add_labels(
    store: Store, namespace: str, digest: str, labels: Mapping[str, str] | None
) -> None:
    """Add ``labels`` to a committed blob (no call when it has them all)."""
    if not labels:
        return
    info = await store.info(namespace, digest)
    if all(info.labels.get(key) == value for key, value in labels.items()):
        return
    await store.update(
        namespace,
        replace(info, labels={**info.labels, **labels}),
        [f"labels.{key}" for key in labels],
    )
