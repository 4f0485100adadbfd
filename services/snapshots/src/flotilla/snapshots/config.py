"""The snapshots service's section of the node's configuration (``[snapshots]``)."""

from __future__ import annotations

from typing import Final

from flotilla.common.config import Section
from flotilla.snapshots.diff.follow import DEFAULT_IDLE

__all__ = ["DEFAULT_MAX_LAYER_SIZE", "SnapshotsConfig"]

DEFAULT_MAX_LAYER_SIZE: Final = 64 << 30


class SnapshotsConfig(Section, frozen=True):
    """The snapshots service.

    Attributes:
        default: the snapshotter a request naming none is for (``overlayfs`` or ``native``);
            where it is not loaded (overlayfs that does not work on this disk) the service
            says so in its log and serves ``native`` as the default.
        max_layer_size: bytes a layer may unpack to (its uncompressed tar), so a hostile or
            broken layer cannot fill the disk; past it an apply is ResourceExhausted.
        follow_idle: seconds an apply that follows a content ingest (its bytes still
            arriving) waits for the ingest to appear, and then for each next byte; past it the
            apply is DeadlineExceeded.
    """

    default: str = "overlayfs"
    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE
    follow_idle: float = DEFAULT_IDLE
