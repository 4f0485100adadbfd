"""The content service on the wire: msgspec Structs and one :class:`Method` per endpoint.

Every method is node-local (``flotilla.v1.node.<node>.content.<method>``): the content store is
one node's disk. The namespace travels in the ``Flotilla-Namespace`` header.

Writers and readers are *sessions*: ``writer_open`` takes the ref's lock and returns a session id
that ``write``, ``commit``, ``writer_stat``, ``truncate`` and ``writer_close`` name; a session
idle for longer than the service's lease is closed (the ingest is kept, the lock released), so a
caller that vanished never holds a ref for ever. A writer on the service's node may skip the
bus for the bytes: it writes into the ingest's file (``WriterOpened.path``) and reports how far
with ``written``. Readers likewise keep the blob open, so a read
that began before a delete finishes.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from flotilla.common.bus import Empty, Method

__all__ = [
    "ABORT",
    "COMMIT",
    "DELETE",
    "INFO",
    "LIST",
    "LIST_STATUSES",
    "PATH",
    "READ",
    "READER_CLOSE",
    "READER_OPEN",
    "STATUS",
    "TRUNCATE",
    "UPDATE",
    "WRITE",
    "WRITER_CLOSE",
    "WRITER_OPEN",
    "WRITER_STAT",
    "WRITTEN",
    "BlobInfo",
    "IngestStatus",
]

SERVICE = "content"


class _Wire(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Base of every content message: frozen, keyword-only, new fields always defaulted."""


class BlobInfo(_Wire, frozen=True):
    """A committed blob (containerd's ``content.Info``)."""

    digest: str
    size: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: dict[str, str] = {}


class IngestStatus(_Wire, frozen=True):
    """An ingest's progress (containerd's ``content.Status``)."""

    ref: str
    offset: int = 0
    total: int = 0
    expected: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


class DigestRequest(_Wire, frozen=True):
    """Names one blob."""

    digest: str


class UpdateRequest(_Wire, frozen=True):
    """Change a blob's labels along ``fieldpaths`` (``labels``, ``labels.<key>``)."""

    info: BlobInfo
    fieldpaths: tuple[str, ...] = ()


class FilterRequest(_Wire, frozen=True):
    """containerd filters, ORed."""

    filters: tuple[str, ...] = ()


class InfoBatch(_Wire, frozen=True):
    """One chunk of a ``list`` stream."""

    infos: tuple[BlobInfo, ...] = ()


class RefRequest(_Wire, frozen=True):
    """Names one ingest."""

    ref: str


class Statuses(_Wire, frozen=True):
    """Ingests."""

    statuses: tuple[IngestStatus, ...] = ()


class WriterOpen(_Wire, frozen=True):
    """Take the lock on ``ref`` and start or resume its ingest."""

    ref: str
    total: int = 0
    expected: str = ""


class Session(_Wire, frozen=True):
    """Names an open reader or writer."""

    session: str


class WriterOpened(_Wire, frozen=True):
    """A writer session, where its ingest stands, and the ingest's file on the service's node.

    ``file_id`` (``<device>:<inode>``) tells a caller whether the file it finds at ``path`` is
    that very file, and not one at the same path on another disk.
    """

    session: str
    status: IngestStatus
    path: str = ""
    file_id: str = ""


class Written(_Wire, frozen=True):
    """A same-node writer wrote the ingest's file up to ``end``: hash and take in those bytes."""

    session: str
    end: int


class WriteRequest(_Wire, frozen=True):
    """Append the stream's bytes at ``offset`` (at or before the ingest's offset)."""

    session: str
    offset: int


class TruncateRequest(_Wire, frozen=True):
    """Drop the ingest's bytes from ``size`` on."""

    session: str
    size: int


class WriterStat(_Wire, frozen=True):
    """A writer's status and the digest of what it holds so far."""

    status: IngestStatus
    digest: str


class CommitRequest(_Wire, frozen=True):
    """Verify and publish the ingest (size 0 / empty expected: not checked)."""

    session: str
    size: int = 0
    expected: str = ""
    labels: dict[str, str] = {}


class ReaderOpened(_Wire, frozen=True):
    """A reader session over a blob of ``size`` bytes."""

    session: str
    size: int


class LocalPath(_Wire, frozen=True):
    """Where a committed blob lies on the service's node."""

    path: str


class ReadRequest(_Wire, frozen=True):
    """Stream ``size`` bytes (0: to the end) from ``offset``."""

    session: str
    offset: int = 0
    size: int = 0


def _method(name: str, request: type, response: type) -> Method:  # type: ignore[type-arg]
    return Method(SERVICE, name, request, response, node_local=True)


INFO: Method[DigestRequest, BlobInfo] = _method("info", DigestRequest, BlobInfo)
UPDATE: Method[UpdateRequest, BlobInfo] = _method("update", UpdateRequest, BlobInfo)
LIST: Method[FilterRequest, Empty] = _method("list", FilterRequest, Empty)
DELETE: Method[DigestRequest, Empty] = _method("delete", DigestRequest, Empty)
READER_OPEN: Method[DigestRequest, ReaderOpened] = _method(
    "reader_open", DigestRequest, ReaderOpened
)
READ: Method[ReadRequest, Empty] = _method("read", ReadRequest, Empty)
READER_CLOSE: Method[Session, Empty] = _method("reader_close", Session, Empty)
STATUS: Method[RefRequest, IngestStatus] = _method("status", RefRequest, IngestStatus)
LIST_STATUSES: Method[FilterRequest, Statuses] = _method("list_statuses", FilterRequest, Statuses)
ABORT: Method[RefRequest, Empty] = _method("abort", RefRequest, Empty)
WRITER_OPEN: Method[WriterOpen, WriterOpened] = _method("writer_open", WriterOpen, WriterOpened)
WRITE: Method[WriteRequest, IngestStatus] = _method("write", WriteRequest, IngestStatus)
WRITTEN: Method[Written, IngestStatus] = _method("written", Written, IngestStatus)
TRUNCATE: Method[TruncateRequest, IngestStatus] = _method("truncate", TruncateRequest, IngestStatus)
WRITER_STAT: Method[Session, WriterStat] = _method("writer_stat", Session, WriterStat)
COMMIT: Method[CommitRequest, DigestRequest] = _method("commit", CommitRequest, DigestRequest)
WRITER_CLOSE: Method[Session, Empty] = _method("writer_close", Session, Empty)
PATH: Method[DigestRequest, LocalPath] = _method("path", DigestRequest, LocalPath)
