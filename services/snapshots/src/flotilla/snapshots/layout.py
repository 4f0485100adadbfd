"""How a snapshotter lays its snapshots out on disk, and mounts them: the part that differs.

Every snapshot has a directory ``<root>/<id>``; its tree is ``<id>/fs``. What fills it, and
which :class:`~flotilla.common.mounts.Mount` records show it, is the layout's business:
:mod:`flotilla.snapshots.overlay` (layers stacked by overlayfs) and
:mod:`flotilla.snapshots.native` (each snapshot a full copy of its parent).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from flotilla.common.mounts import Mount
from flotilla.snapshots.snapshotter import Kind, Usage

__all__ = ["Layout", "disk_usage", "tree"]


def tree(snapshot_dir: Path) -> Path:
    """The tree of the snapshot whose directory is ``snapshot_dir``."""
    return snapshot_dir / "fs"


class Layout(Protocol):
    """The on-disk shape of one snapshotter's snapshots (blocking methods)."""

    @property
    def name(self) -> str:
        """The snapshotter's name (``overlayfs``, ``native``)."""
        ...

    @property
    def can_rebase(self) -> bool:
        """Whether a snapshot's layer is independent of its parents' directories."""
        ...

    def populate(self, new_dir: Path, parents: Sequence[Path]) -> None:
        """Fill the new snapshot directory ``new_dir`` (``parents``: their dirs, nearest first)."""
        ...

    def mounts(self, kind: Kind, own: Path, parents: Sequence[Path]) -> list[Mount]:
        """The mounts of an active snapshot or view whose directory is ``own``."""
        ...


def disk_usage(directory: Path) -> Usage:
    """The blocks (as bytes) and inodes under ``directory``, each inode counted once."""
    seen: set[tuple[int, int]] = set()
    size = 0

    def count(path: str) -> None:
        nonlocal size
        stat = os.lstat(path)
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            size += stat.st_blocks * 512

    count(str(directory))
    for top, dirs, files in os.walk(directory):
        for name in (*dirs, *files):
            count(os.path.join(top, name))
    return Usage(size=size, inodes=len(seen))
