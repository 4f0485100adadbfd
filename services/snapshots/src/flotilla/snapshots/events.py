"""The events the snapshots service publishes, after the change they describe is durable.

Tagged with containerd's event names (``containerd.events.Snapshot*``) and published under its
topics, as containerd's snapshots service does (a view publishes nothing).
"""

from __future__ import annotations

from typing import Final

from flotilla.common.events import Event

__all__ = [
    "TOPIC_COMMIT",
    "TOPIC_PREPARE",
    "TOPIC_REMOVE",
    "SnapshotCommit",
    "SnapshotPrepare",
    "SnapshotRemove",
]

TOPIC_PREPARE: Final = "/snapshot/prepare"
TOPIC_COMMIT: Final = "/snapshot/commit"
TOPIC_REMOVE: Final = "/snapshot/remove"


class SnapshotPrepare(Event, frozen=True, kw_only=True, tag="containerd.events.SnapshotPrepare"):
    """An active snapshot was prepared."""

    key: str
    parent: str = ""
    snapshotter: str


class SnapshotCommit(Event, frozen=True, kw_only=True, tag="containerd.events.SnapshotCommit"):
    """An active snapshot was committed under ``name``."""

    key: str
    name: str
    snapshotter: str


class SnapshotRemove(Event, frozen=True, kw_only=True, tag="containerd.events.SnapshotRemove"):
    """A snapshot was removed."""

    key: str
    snapshotter: str
