"""Per-blob progress of a pull, as clients draw it (``docker pull``'s bars).

A :class:`Tracker` turns a pull's many small steps into :class:`BlobProgress` reports for a
sink: every change of state at once, byte counts at most every ``interval`` seconds per blob.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Final

import msgspec

__all__ = ["BlobProgress", "ProgressSink", "State", "Tracker", "discard"]

INTERVAL: Final = 0.1


class State(enum.StrEnum):
    """Where a blob is in a pull or a push."""

    WAITING = "waiting"
    """Queued behind the download limit, or behind another pull of the same blob."""
    DOWNLOADING = "downloading"
    UPLOADING = "uploading"
    """Being pushed to a registry."""
    VERIFYING = "verifying"
    EXTRACTING = "extracting"
    EXISTS = "exists"
    """Already there (a pull's content store, a push's registry): not copied."""
    DONE = "done"
    FAILED = "failed"


class BlobProgress(msgspec.Struct, frozen=True, kw_only=True):
    """One blob's progress: ``offset`` of ``total`` bytes."""

    digest: str
    media_type: str
    state: State
    offset: int = 0
    total: int = 0


ProgressSink = Callable[[BlobProgress], None]
"""Takes reports; must not block (it is called from the pull's tasks)."""


def discard(_: BlobProgress) -> None:
    """A sink for pulls nobody watches."""


class Tracker:
    """Reports blobs' progress to ``sink``, byte counts throttled per blob."""

    def __init__(self, sink: ProgressSink = discard, interval: float = INTERVAL) -> None:
        self._sink = sink
        self._interval = interval
        self._last: dict[str, tuple[State, float]] = {}

    def report(
        self, digest: str, media_type: str, state: State, offset: int = 0, total: int = 0
    ) -> None:
        """Say where a blob is; byte-count-only changes are dropped within ``interval``."""
        now = time.monotonic()
        last = self._last.get(digest)
        if last is not None and last[0] is state and now - last[1] < self._interval:
            return
        self._last[digest] = (state, now)
        self._sink(
            BlobProgress(
                digest=digest, media_type=media_type, state=state, offset=offset, total=total
            )
        )
