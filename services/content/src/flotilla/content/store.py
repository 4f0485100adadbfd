"""The content store's ports, as containerd's ``core/content``: a node's content-addressed blobs.

Vocabulary and lifecycle:

- An **ingest** is a not-yet-committed write, named by a caller-chosen ``ref`` that is unique
  within a namespace (e.g. ``layer-sha256:...``). :meth:`Ingester.writer` starts or resumes it
  and hands out the only :class:`Writer` for that ref; bytes are appended at the current
  offset. Closing a writer keeps the ingest, so a later ``writer()`` with the same ref resumes
  at the stored offset (also after a restart of the store). :class:`IngestManager` lists and
  aborts ingests.
- :meth:`Writer.commit` verifies the size and digest and turns the ingest into a **blob**
  named by its digest. The ingest is then gone from :class:`IngestManager` and the blob is
  visible through :class:`Provider` and :class:`Manager`, with its labels.
- A commit that fails verification closes the writer but keeps the ingest, so the caller may
  resume, retry or abort; a commit of a digest the namespace already has raises AlreadyExists
  and drops the ingest.

Every method but :meth:`Manager.namespaces` takes the namespace first. Namespaces are isolated
(containerd's ``content_sharing_policy = "isolated"``): a namespace sees only the blobs committed
in it, and to add a blob another namespace has, a caller must write all its bytes again.

Digests are plain strings (``sha256:<hex>``, see :mod:`flotilla.common.digests`); methods
that take one raise InvalidArgument when it is malformed. Errors are always
:mod:`flotilla.common.errdefs` classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from flotilla.common.filters import Adaptor
from flotilla.common.lifecycle import AsyncClosable
from flotilla.common.times import EPOCH

__all__ = [
    "EPOCH",
    "Info",
    "IngestManager",
    "Ingester",
    "Manager",
    "PathStore",
    "PathWriter",
    "Provider",
    "ReaderAt",
    "Status",
    "Store",
    "Writer",
    "adapt_info",
    "adapt_status",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Info:
    """A committed blob as one namespace sees it.

    Attributes:
        digest: the blob's digest, ``<algorithm>:<hex>``.
        size: its length in bytes.
        created_at: when it was committed in this namespace (UTC).
        updated_at: when its labels last changed (UTC); ``created_at`` until then.
        labels: mutable metadata, including containerd's GC labels
            (``containerd.io/gc.root``, ``containerd.io/gc.ref.content.*``).
    """

    digest: str
    size: int = 0
    created_at: datetime = EPOCH
    updated_at: datetime = EPOCH
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """The progress of one ingest.

    Attributes:
        ref: the ingest's name within its namespace.
        offset: bytes written so far (the next write lands here).
        total: the expected final size, 0 when unknown.
        expected: the expected digest, ``None`` when unknown.
        started_at: when the ingest began (UTC).
        updated_at: when it was last written to (UTC).
    """

    ref: str
    offset: int = 0
    total: int = 0
    expected: str | None = None
    started_at: datetime = EPOCH
    updated_at: datetime = EPOCH


class ReaderAt(AsyncClosable, Protocol):
    """Random access to one committed blob; keeps working if the blob is deleted meanwhile.

    Use as an async context manager, or call :meth:`close`.
    """

    @property
    def size(self) -> int:
        """The blob's length in bytes."""
        ...

    async def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes starting at ``offset``.

        Fewer bytes come back at the end of the blob (none when ``offset == self.size``),
        or when ``size`` exceeds the largest chunk the implementation serves at once; but
        never none for a non-zero ``size`` before the end, so callers loop until they have
        what they need (see :func:`flotilla.content.helpers.iter_range`).

        Raises:
            InvalidArgument: if ``offset`` or ``size`` is negative.
            OutOfRange: if ``offset`` is beyond the end of the blob.
        """
        ...

    async def close(self) -> None:
        """Release the reader; closing twice is harmless."""
        ...


class Writer(AsyncClosable, Protocol):
    """The exclusive handle on one ingest, holding its ref's lock until closed or committed.

    Use as an async context manager (leaving it closes the writer, keeping the ingest), or
    call :meth:`close`. After :meth:`close` or :meth:`commit`, other methods raise
    FailedPrecondition; after the ingest was aborted, NotFound.
    """

    @property
    def ref(self) -> str:
        """The ingest's ref."""
        ...

    @property
    def offset(self) -> int:
        """Bytes written so far, where the next :meth:`write` appends."""
        ...

    async def write(self, data: bytes) -> None:
        """Append all of ``data`` at the current offset."""
        ...

    async def truncate(self, size: int) -> None:
        """Drop everything from ``size`` on; the next write appends there.

        Raises:
            OutOfRange: if ``size`` is negative or beyond the current offset.
        """
        ...

    async def digest(self) -> str:
        """The digest of the bytes written so far (the algorithm of the expected digest)."""
        ...

    async def status(self) -> Status:
        """The ingest's current status."""
        ...

    async def commit(
        self,
        size: int = 0,
        expected: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Verify and publish the ingest as a blob; always closes the writer.

        Args:
            size: the expected length, or 0 not to check it.
            expected: the expected digest, or ``None`` not to check it. Its algorithm is
                the one the blob is named with; the default is sha256.
            labels: the blob's initial labels.

        Returns:
            The committed blob's digest.

        Raises:
            InvalidArgument: if ``expected`` or a label is malformed.
            FailedPrecondition: if the size or digest differs (the message names expected
                and actual); the ingest is kept for a retry or an abort.
            AlreadyExists: if the namespace already has this digest; the ingest is dropped
                and the existing blob untouched.
        """
        ...

    async def close(self) -> None:
        """Release the ref, keeping the ingest for a later resume; closing twice is harmless."""
        ...


class Provider(Protocol):
    """Reads committed blobs."""

    async def reader_at(self, namespace: str, digest: str) -> ReaderAt:
        """Open the blob ``digest`` for reading.

        Raises:
            NotFound: if the namespace has no such blob.
        """
        ...


class Ingester(Protocol):
    """Starts or resumes ingests."""

    async def writer(
        self, namespace: str, ref: str, total: int = 0, expected: str | None = None
    ) -> Writer:
        """Take the lock on ``ref`` and return its writer, resuming at the stored offset.

        An ingest whose stored total or expected digest contradicts a non-zero ``total`` or
        an ``expected`` given here holds other content: it starts afresh, as in containerd.

        Args:
            namespace: the namespace the blob will be committed in.
            ref: the ingest's name, unique within the namespace.
            total: the expected final size, 0 when unknown (informational, see Status).
            expected: the expected digest, if known; it picks the hash algorithm.

        Raises:
            InvalidArgument: if ``ref`` is empty or ``expected`` is malformed.
            Unavailable: if another writer holds ``ref`` (here or in another process).
            AlreadyExists: if ``expected`` is already committed in the namespace.
        """
        ...


class IngestManager(Protocol):
    """Inspects and cancels ingests."""

    async def status(self, namespace: str, ref: str) -> Status:
        """The status of the ingest ``ref``.

        Raises:
            NotFound: if there is no such ingest.
        """
        ...

    async def list_statuses(self, namespace: str, filters: Sequence[str] = ()) -> list[Status]:
        """The namespace's ingests matching any of ``filters`` (fields ``ref``, ``expected``)."""
        ...

    async def abort(self, namespace: str, ref: str) -> None:
        """Cancel the ingest ``ref`` and free its resources; an open writer on it fails.

        Raises:
            NotFound: if there is no such ingest.
        """
        ...


class Manager(Protocol):
    """Inspects, relabels, lists and deletes committed blobs."""

    async def info(self, namespace: str, digest: str) -> Info:
        """The blob's info.

        Raises:
            NotFound: if the namespace has no such blob.
        """
        ...

    async def update(self, namespace: str, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Change the mutable fields of ``info.digest``'s blob and return the result.

        ``fieldpaths`` name what to change: ``labels`` replaces all labels with
        ``info.labels``; ``labels.<key>`` sets that one label from ``info.labels``, or
        removes it when ``info.labels`` lacks it (or maps it to ""). No field paths means
        ``labels``. Labels with empty values are never stored.

        Raises:
            NotFound: if the namespace has no such blob.
            InvalidArgument: on any other field path, or a malformed label.
        """
        ...

    def walk(self, namespace: str, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        """The namespace's blobs matching any of ``filters`` (``digest``, ``size``, ``labels.*``).

        Raises:
            InvalidArgument: (while iterating) on a malformed filter.
        """
        ...

    async def delete(self, namespace: str, digest: str) -> None:
        """Remove the blob from the namespace; readers already open keep working.

        Raises:
            NotFound: if the namespace has no such blob.
        """
        ...

    async def namespaces(self, *, ingests: bool = False) -> list[str]:
        """The namespaces with at least one committed blob in this store, sorted.

        Whether or not the cluster has a record of them: this is what the store holds.

        Args:
            ingests: also count the namespaces with an ingest (not yet committed).
        """
        ...


class Store(Provider, Ingester, IngestManager, Manager, Protocol):
    """The whole content store: everything the service, the proxy and the tests speak."""


class PathWriter(Writer, Protocol):
    """A writer whose bytes a caller on the store's node may put straight into the ingest's file.

    The caller writes at :attr:`~Writer.offset` into :attr:`data_path` (after checking, by
    :meth:`data_identity`, that the file it opened is that very file) and then reports how far
    with :meth:`adopt`; the store hashes what it adopts, so it never counts an unchecked byte.
    """

    @property
    def data_path(self) -> Path:
        """The ingest's data file."""
        ...

    def data_identity(self) -> tuple[int, int]:
        """The device and inode of :attr:`data_path`."""
        ...

    async def adopt(self, end: int) -> None:
        """Take in what the caller wrote into :attr:`data_path`, up to ``end``.

        Raises:
            OutOfRange: if ``end`` is before the offset.
            FailedPrecondition: if the file holds fewer than ``end`` bytes; nothing is taken in.
        """
        ...


class PathStore(Store, Protocol):
    """A store on this node's disk: callers on the node pass paths instead of bytes."""

    async def writer(
        self, namespace: str, ref: str, total: int = 0, expected: str | None = None
    ) -> PathWriter:
        """As :meth:`Ingester.writer`, with the ingest's file reachable."""
        ...

    async def blob_path(self, namespace: str, digest: str) -> Path:
        """Where a committed blob's bytes lie on this node (read-only; a delete unlinks them).

        Raises:
            NotFound: if the namespace has no such blob.
        """
        ...

    async def ingest_path(self, namespace: str, ref: str) -> tuple[Path, tuple[int, int]]:
        """Where an ingest's bytes lie on this node, and the file's device and inode.

        For a reader that follows the ingest as it grows (read-only). The file keeps its
        inode when the ingest is committed (a hard link into the blobs) and loses its last
        name when the ingest is aborted or started afresh, so a reader that opened it can tell.

        Raises:
            NotFound: if the namespace has no such ingest.
        """
        ...


def adapt_info(info: Info) -> Adaptor:
    """The filter adaptor for blobs: ``digest``, ``size`` and ``labels.<key>``."""

    def lookup(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if path[0] == "digest":
            return info.digest
        if path[0] == "size":
            return str(info.size)
        if path[0] == "labels" and len(path) > 1:
            # labels.a.b and labels."a.b" name the same key, as in containerd.
            return info.labels.get(".".join(path[1:]))
        return None

    return lookup


def adapt_status(status: Status) -> Adaptor:
    """The filter adaptor for ingests: ``ref`` and ``expected``."""

    def lookup(path: Sequence[str]) -> str | None:
        if len(path) != 1:
            return None
        if path[0] == "ref":
            return status.ref
        if path[0] == "expected":
            return status.expected
        return None

    return lookup
