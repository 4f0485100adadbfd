"""Undoing a failed unpack (blocking, best effort: what cannot be undone is logged).

A root that was empty is emptied again. Otherwise what the unpack created is removed and
the directories it merged get their owner, mode and times back. What it removed cannot come
back: the entries whiteouts deleted, the files and symlinks that entries replaced, the
contents of directories made opaque, and extended attributes set on merged directories.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from typing import Final

from flotilla.snapshots.diff.unpack_paths import PlainDirs
from flotilla.snapshots.diff.unpack_remove import remove_all, remove_children
from flotilla.snapshots.diff.unpack_write import Tracker

__all__ = ["is_empty", "undo", "wipe"]

log = logging.getLogger(__name__)

_OPAQUE_XATTR: Final = "trusted.overlay.opaque"


def is_empty(root: int) -> bool:
    """Whether the directory ``root`` has no entries."""
    with os.scandir(root) as entries:
        return next(entries, None) is None


def wipe(root: int, track: Tracker) -> None:
    """Remove everything below ``root``, which was empty when the unpack started."""
    with _logged("."):
        remove_children(root, lambda _: False)
    if () in track.opaqued:
        with _logged("."):
            os.removexattr(root, _OPAQUE_XATTR)


def undo(root: int, track: Tracker) -> None:
    """Remove what the unpack created, and restore the directories it merged."""
    dirs = PlainDirs(root)
    try:
        for path in reversed(_tops(track.created)):
            parent = dirs.get(path[:-1])
            if parent is not None:
                with _logged("/".join(path)):
                    remove_all(parent, path[-1])
    finally:
        dirs.close()
    dirs = PlainDirs(root)
    try:
        for path, info in reversed(track.merged):
            fd = dirs.get(path)
            if fd is not None:
                with _logged("/".join(path)):
                    os.fchown(fd, info.st_uid, info.st_gid)
                    os.fchmod(fd, stat.S_IMODE(info.st_mode))
                    os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
        for path in track.opaqued:
            fd = dirs.get(path)
            if fd is not None:
                with _logged("/".join(path) or "."):
                    os.removexattr(fd, _OPAQUE_XATTR)
    finally:
        dirs.close()


def _tops(created: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The created paths not inside another created directory (which takes them along).

    A directory is created before anything in it, so one pass in order finds them.
    """
    tops = []
    seen: set[tuple[str, ...]] = set()
    for path in created:
        if path[:-1] not in seen:
            tops.append(path)
        seen.add(path)
    return tops


@contextlib.contextmanager
def _logged(path: str) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        log.warning("undoing a failed layer unpack: %s: %s", path, err.strerror or err)
