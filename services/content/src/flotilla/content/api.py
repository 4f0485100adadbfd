"""The content service on the wire: msgspec Structs and one :class:`Method` per endpoint.

Every method is node-local (``flotilla.v1.node.<node>.content.<method>``): the content store is
one node's disk. The namespace travels in the ``Flotilla-Namespace`` header; ``namespaces``, which
asks which namespaces the node holds blobs in, has none.

Writers and readers are *sessions*: ``writer_open`` takes the ref's lock and returns a session id
that ``write``, ``commit``, ``writer_stat``, ``truncate`` and ``writer_close`` name; a session
idle for longer than the service's lease is closed (the ingest is kept, the lock released), so a
caller that vanished never holds a ref for ever. A writer on the service's node may skip the
bus for the bytes: it writes into the ingest's file (``WriterOpened.path``) and reports how far
with ``written``; a reader on that node may follow an ingest's file as it grows
(``ingest_path``). Readers likewise keep the blob open, so a read that began before a delete
finishes.
"""

from __future__ import annotations

from datetime import datetime

from flotilla.common.bus import Empty, ServiceApi, Wire

__all__ = [
    "ABORT",
    "API",
    "COMMIT",
    "DELETE",
    "INFO",
    "INGEST_PATH",
    "LIST",
    "LIST_STATUSES",
    "NAMESPACES",
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
    "Namespaces",
    "NamespacesRequest",
]

SERVICE = "content"


class BlobInfo(Wire, frozen=True):
    """A committed blob (containerd's ``content.Info``)."""

    digest: str
    size: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: dict[str, str] = {}


class IngestStatus(Wire, frozen=True):
    """An ingest's progress (containerd's ``content.Status``)."""

    ref: str
    offset: int = 0
    total: int = 0
    expected: str = ""
    started_at: datetime | None = None
    updated_at: datetime | None = None


class DigestRequest(Wire, frozen=True):
    """Names one blob."""

    digest: str


class DeleteRequest(DigestRequest, frozen=True):
    """Remove one blob from the namespace."""


class ReaderOpen(DigestRequest, frozen=True):
    """Open a reader session on one blob."""


class PathRequest(DigestRequest, frozen=True):
    """Where one blob lies on the service's node."""


class Committed(DigestRequest, frozen=True):
    """The digest a commit published."""


class UpdateRequest(Wire, frozen=True):
    """Change a blob's labels along ``fieldpaths`` (``labels``, ``labels.<key>``)."""

    info: BlobInfo
    fieldpaths: tuple[str, ...] = ()


class FilterRequest(Wire, frozen=True):
    """containerd filters, ORed: the blobs to list."""

    filters: tuple[str, ...] = ()


class StatusFilter(FilterRequest, frozen=True):
    """containerd filters, ORed: the ingests to list."""


class RefRequest(Wire, frozen=True):
    """Names one ingest."""

    ref: str


class AbortRequest(RefRequest, frozen=True):
    """Cancel one ingest."""


class IngestPathRequest(RefRequest, frozen=True):
    """Where one ingest's data file lies on the service's node."""


class Statuses(Wire, frozen=True):
    """Ingests."""

    statuses: tuple[IngestStatus, ...] = ()


class WriterOpen(Wire, frozen=True):
    """Take the lock on ``ref`` and start or resume its ingest."""

    ref: str
    total: int = 0
    expected: str = ""


class Session(Wire, frozen=True):
    """Names an open reader or writer."""

    session: str


class WriterSession(Session, frozen=True):
    """Names an open writer, to ask how far it is."""


class WriterClose(Session, frozen=True):
    """End a writer session, keeping its ingest."""


class ReaderClose(Session, frozen=True):
    """End a reader session."""


class WriterOpened(Wire, frozen=True):
    """A writer session, where its ingest stands, and the ingest's file on the service's node.

    ``file_id`` (``<device>:<inode>``) tells a caller whether the file it finds at ``path`` is
    that very file, and not one at the same path on another disk.
    """

    session: str
    status: IngestStatus
    path: str = ""
    file_id: str = ""


class Written(Wire, frozen=True):
    """A same-node writer wrote the ingest's file up to ``end``: hash and take in those bytes."""

    session: str
    end: int


class WriteRequest(Wire, frozen=True):
    """Append the stream's bytes at ``offset`` (at or before the ingest's offset)."""

    session: str
    offset: int


class TruncateRequest(Wire, frozen=True):
    """Drop the ingest's bytes from ``size`` on."""

    session: str
    size: int


class WriterStat(Wire, frozen=True):
    """A writer's status and the digest of what it holds so far."""

    status: IngestStatus
    digest: str


class CommitRequest(Wire, frozen=True):
    """Verify and publish the ingest (size 0 / empty expected: not checked)."""

    session: str
    size: int = 0
    expected: str = ""
    labels: dict[str, str] = {}


class ReaderOpened(Wire, frozen=True):
    """A reader session over a blob of ``size`` bytes."""

    session: str
    size: int


class LocalPath(Wire, frozen=True):
    """Where a committed blob lies on the service's node."""

    path: str


class IngestFileAt(Wire, frozen=True):
    """An ingest's data file on the service's node, and its ``<device>:<inode>``.

    The file grows as the ingest's writer writes; commit hard-links it into the blobs and
    removes the ingest's name, abort unlinks it. ``file_id`` tells a reader whether the file it
    opened at ``path`` is that very file (an ingest started afresh has a new one).
    """

    path: str
    file_id: str


class NamespacesRequest(Wire, frozen=True):
    """The namespaces the node holds blobs in (``ingests``: or ingests)."""

    ingests: bool = False


class Namespaces(Wire, frozen=True):
    """Namespace names, sorted."""

    namespaces: tuple[str, ...] = ()


class ReadRequest(Wire, frozen=True):
    """Stream ``size`` bytes (0: to the end) from ``offset``."""

    session: str
    offset: int = 0
    size: int = 0


API = ServiceApi(SERVICE, node_local=True)

INFO = API.unary("info", DigestRequest, BlobInfo)
UPDATE = API.unary("update", UpdateRequest, BlobInfo)
LIST = API.items("list", FilterRequest, BlobInfo)
DELETE = API.unary("delete", DeleteRequest, Empty)
READER_OPEN = API.unary("reader_open", ReaderOpen, ReaderOpened)
READ = API.source("read", ReadRequest)
READER_CLOSE = API.unary("reader_close", ReaderClose, Empty)
STATUS = API.unary("status", RefRequest, IngestStatus)
LIST_STATUSES = API.unary("list_statuses", StatusFilter, Statuses)
ABORT = API.unary("abort", AbortRequest, Empty)
WRITER_OPEN = API.unary("writer_open", WriterOpen, WriterOpened)
WRITE = API.sink("write", WriteRequest, IngestStatus)
WRITTEN = API.unary("written", Written, IngestStatus)
TRUNCATE = API.unary("truncate", TruncateRequest, IngestStatus)
WRITER_STAT = API.unary("writer_stat", WriterSession, WriterStat)
COMMIT = API.unary("commit", CommitRequest, Committed)
WRITER_CLOSE = API.unary("writer_close", WriterClose, Empty)
PATH = API.unary("path", PathRequest, LocalPath)
INGEST_PATH = API.unary("ingest_path", IngestPathRequest, IngestFileAt)
NAMESPACES = API.unary("namespaces", NamespacesRequest, Namespaces)
