"""One blob or document onto a registry, as containerd's ``dockerPusher.push`` does it.

A blob the repository has (``HEAD``) is skipped; one that another repository of the registry
has (by its distribution-source label) is mounted; the rest is uploaded, streamed from the
node's content store chunk by chunk (a retry reads it again from the start). A refused mount
(the registry opened an upload instead, or the credentials do not cover the other
repository) falls back to an upload. Manifests are put by digest unless the repository has
them; the tag is put unless it already names the root.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

from flotilla.common import errdefs
from flotilla.content.helpers import iter_range
from flotilla.content.store import ReaderAt, Store
from flotilla.images import oci
from flotilla.images.pull.progress import State, Tracker
from flotilla.images.push.walk import Blob, Document

__all__ = ["Target", "push_blob", "push_document", "push_root"]


class Target(Protocol):
    """A repository on a registry, as a push uses it (:class:`~.remotes.Repository`)."""

    @property
    def domain(self) -> str:
        """The registry (``docker.io``, ``127.0.0.1:5000``)."""
        ...

    @property
    def path(self) -> str:
        """The repository (``library/busybox``)."""
        ...

    async def resolve(self, reference: str) -> oci.Descriptor:
        """The descriptor a tag names."""
        ...

    async def blob_exists(self, desc: oci.Descriptor) -> bool:
        """Whether the repository has the blob, manifest or index."""
        ...

    async def mount_blob(self, desc: oci.Descriptor, from_repository: str) -> bool:
        """Link a blob from another repository of the registry; whether it did."""
        ...

    async def push_blob(
        self,
        desc: oci.Descriptor,
        chunks: Callable[[], AsyncIterator[bytes]],
        *,
        chunk_size: int = 0,
    ) -> None:
        """Upload a blob whose bytes ``chunks()`` yields."""
        ...

    async def push_manifest(self, desc: oci.Descriptor, data: bytes, tag: str = "") -> None:
        """Put a manifest or index under ``tag``, or under its digest."""
        ...


@runtime_checkable
class _Streaming(Protocol):
    """A reader that streams a range (the content proxy's): one request, not one per chunk."""

    def chunks(self, offset: int = 0, size: int = 0) -> AsyncIterator[bytes]: ...


async def push_blob(
    store: Store,
    namespace: str,
    target: Target,
    blob: Blob,
    tracker: Tracker,
    *,
    image: str,
    chunk_size: int = 0,
) -> None:
    """Make sure ``target`` has ``blob``: skipped, mounted or uploaded.

    Raises:
        NotFound: the registry lacks the blob and the content store does not have it either.
        Unauthenticated, PermissionDenied, InvalidArgument, Unavailable: as the registry
            answered (:mod:`flotilla.images.remotes.push`).
    """
    desc = blob.desc
    if await target.blob_exists(desc):
        tracker.report(desc.digest, desc.media_type, State.EXISTS, desc.size, desc.size)
        return
    if blob.mount_from and await _mount(target, desc, blob.mount_from):
        tracker.report(desc.digest, desc.media_type, State.DONE, desc.size, desc.size)
        return
    if not blob.stored:
        raise _missing(namespace, desc, image)
    tracker.report(desc.digest, desc.media_type, State.UPLOADING, 0, desc.size)
    chunks = _stream(store, namespace, desc, tracker, image)
    await target.push_blob(desc, chunks, chunk_size=chunk_size)
    tracker.report(desc.digest, desc.media_type, State.DONE, desc.size, desc.size)


async def _mount(target: Target, desc: oci.Descriptor, repository: str) -> bool:
    """Whether the registry linked the blob; a refusal is no error (containerd uploads then)."""
    try:
        return await target.mount_blob(desc, repository)
    except (errdefs.Unauthenticated, errdefs.PermissionDenied):
        return False


async def push_document(target: Target, doc: Document, tracker: Tracker) -> None:
    """Put a manifest or index by digest unless the repository has it."""
    desc = doc.desc
    if await target.blob_exists(desc):
        tracker.report(desc.digest, desc.media_type, State.EXISTS, desc.size, desc.size)
        return
    tracker.report(desc.digest, desc.media_type, State.UPLOADING, 0, desc.size)
    await target.push_manifest(desc, doc.data)
    tracker.report(desc.digest, desc.media_type, State.DONE, desc.size, desc.size)


async def push_root(target: Target, doc: Document, tag: str, tracker: Tracker) -> None:
    """Put the root under ``tag`` unless the tag already names it (by digest with no tag)."""
    if not tag:
        await push_document(target, doc, tracker)
        return
    desc = doc.desc
    if await _tagged(target, tag) == desc.digest:
        tracker.report(desc.digest, desc.media_type, State.EXISTS, desc.size, desc.size)
        return
    tracker.report(desc.digest, desc.media_type, State.UPLOADING, 0, desc.size)
    await target.push_manifest(desc, doc.data, tag)
    tracker.report(desc.digest, desc.media_type, State.DONE, desc.size, desc.size)


async def _tagged(target: Target, tag: str) -> str:
    """The digest ``tag`` names now; "" if none, or if asking is not allowed.

    containerd pushes when its check is refused, and so does this.
    """
    try:
        return (await target.resolve(tag)).digest
    except (errdefs.NotFound, errdefs.Unauthenticated, errdefs.PermissionDenied):
        return ""


def _missing(namespace: str, desc: oci.Descriptor, image: str) -> errdefs.NotFound:
    return errdefs.NotFound(
        f"image {image}: blob {desc.digest} ({desc.media_type}) is not in the content store "
        f"of namespace {namespace}"
    )


def _stream(
    store: Store, namespace: str, desc: oci.Descriptor, tracker: Tracker, image: str
) -> Callable[[], AsyncIterator[bytes]]:
    """Makes an iterator over the blob's bytes in the store, reporting how far it got."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            reader = await store.reader_at(namespace, desc.digest)
        except errdefs.NotFound:  # deleted since the walk
            raise _missing(namespace, desc, image) from None
        async with reader:
            done = 0
            async for chunk in _read(reader):
                done += len(chunk)
                tracker.report(desc.digest, desc.media_type, State.UPLOADING, done, desc.size)
                yield chunk

    return chunks


def _read(reader: ReaderAt) -> AsyncIterator[bytes]:
    if isinstance(reader, _Streaming):
        return reader.chunks(0, 0)
    return iter_range(reader)
