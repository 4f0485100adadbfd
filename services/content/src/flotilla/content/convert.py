"""Between the core's value types and the wire Structs, both ways."""

from __future__ import annotations

from datetime import datetime

from flotilla.content.api import BlobInfo, IngestStatus
from flotilla.content.store import EPOCH, Info, Status

__all__ = ["blob_info", "file_id", "info", "ingest_status", "status"]


def _time(value: datetime | None) -> datetime:
    return value if value is not None else EPOCH


def blob_info(value: Info) -> BlobInfo:
    """Core -> wire."""
    return BlobInfo(
        digest=value.digest,
        size=value.size,
        created_at=value.created_at,
        updated_at=value.updated_at,
        labels=dict(value.labels),
    )


def info(value: BlobInfo) -> Info:
    """Wire -> core."""
    return Info(
        digest=value.digest,
        size=value.size,
        created_at=_time(value.created_at),
        updated_at=_time(value.updated_at),
        labels=dict(value.labels),
    )


def ingest_status(value: Status) -> IngestStatus:
    """Core -> wire."""
    return IngestStatus(
        ref=value.ref,
        offset=value.offset,
        total=value.total,
        expected=value.expected or "",
        started_at=value.started_at,
        updated_at=value.updated_at,
    )


def status(value: IngestStatus) -> Status:
    """Wire -> core."""
    return Status(
        ref=value.ref,
        offset=value.offset,
        total=value.total,
        expected=value.expected or None,
        started_at=_time(value.started_at),
        updated_at=_time(value.updated_at),
    )


def file_id(identity: tuple[int, int]) -> str:
    """A file's device and inode, as the wire names it (``<dev>:<inode>``)."""
    device, inode = identity
    return f"{device}:{inode}"
