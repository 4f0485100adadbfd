"""Between the core's value types and the wire Structs, both ways."""

from __future__ import annotations

from datetime import datetime

from flotilla.common.times import EPOCH
from flotilla.snapshots import api
from flotilla.snapshots.diff.differ import Descriptor
from flotilla.snapshots.snapshotter import Info, Kind, Usage

__all__ = ["descriptor", "info", "snapshot_info", "usage", "wire_descriptor", "wire_usage"]


_KIND_NAMES: dict[Kind, api.KindName] = {
    Kind.VIEW: "View",
    Kind.ACTIVE: "Active",
    Kind.COMMITTED: "Committed",
}


def _time(value: datetime | None) -> datetime:
    return value if value is not None else EPOCH


def snapshot_info(value: Info) -> api.SnapshotInfo:
    """Core -> wire."""
    return api.SnapshotInfo(
        name=value.name,
        kind=_KIND_NAMES[value.kind],
        parent=value.parent,
        labels=dict(value.labels),
        created_at=value.created_at,
        updated_at=value.updated_at,
    )


def info(value: api.SnapshotInfo) -> Info:
    """Wire -> core."""
    return Info(
        name=value.name,
        kind=Kind(value.kind),
        parent=value.parent,
        labels=dict(value.labels),
        created_at=_time(value.created_at),
        updated_at=_time(value.updated_at),
    )


def wire_usage(value: Usage) -> api.Usage:
    """Core -> wire."""
    return api.Usage(size=value.size, inodes=value.inodes)


def usage(value: api.Usage) -> Usage:
    """Wire -> core."""
    return Usage(size=value.size, inodes=value.inodes)


def wire_descriptor(value: Descriptor) -> api.Descriptor:
    """Core -> wire."""
    return api.Descriptor(
        media_type=value.media_type,
        digest=value.digest,
        size=value.size,
        annotations=dict(value.annotations),
    )


def descriptor(value: api.Descriptor) -> Descriptor:
    """Wire -> core."""
    return Descriptor(
        media_type=value.media_type,
        digest=value.digest,
        size=value.size,
        annotations=dict(value.annotations),
    )
