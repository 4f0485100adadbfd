"""Removing trees below the root by directory descriptor (blocking), at any depth.

``shutil.rmtree`` recurses once per level (Python's recursion limit ends it near 1000 levels,
which a hostile layer can exceed); this walks with an explicit stack instead, one open
descriptor per level, and never follows a symlink.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from flotilla.snapshots.diff.unpack_paths import DIR_FLAGS

__all__ = ["remove_all", "remove_children"]


def remove_all(parent: int, name: str) -> bool:
    """Remove ``name`` from the directory ``parent``, a directory with all it holds.

    Returns:
        Whether it was a directory (or a symlink): what a cache of directories must forget.
    """
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=parent)
        return stat.S_ISLNK(info.st_mode)
    fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    try:
        remove_children(fd, lambda _: False)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)
    return True


@dataclass
class _Level:
    fd: int
    path: tuple[str, ...]
    removing: bool  # the directory goes, with all it holds
    subdirs: list[str] = field(default_factory=list)


def remove_children(directory: int, keep: Callable[[tuple[str, ...]], bool]) -> None:
    """Remove what ``directory`` holds, at any depth, except what ``keep`` keeps.

    ``keep`` is asked of each entry's path relative to ``directory``; a directory it keeps
    is kept and looked into, anything else it keeps is left alone.
    """
    levels = [_Level(directory, (), removing=False)]
    try:
        _scan(levels[0], keep)
        while levels:
            top = levels[-1]
            if top.subdirs:
                name = top.subdirs.pop()
                path = (*top.path, name)
                fd = os.open(name, DIR_FLAGS, dir_fd=top.fd)
                levels.append(_Level(fd, path, top.removing or not keep(path)))
                _scan(levels[-1], keep)
                continue
            levels.pop()
            if top.fd != directory:
                os.close(top.fd)
            if top.removing:
                os.rmdir(top.path[-1], dir_fd=levels[-1].fd)
    finally:
        for level in levels:
            if level.fd != directory:
                os.close(level.fd)


def _scan(level: _Level, keep: Callable[[tuple[str, ...]], bool]) -> None:
    """Unlink what ``level`` holds that is neither kept nor a directory; list its directories."""
    with os.scandir(level.fd) as entries:
        found = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_dir in found:
        if is_dir:
            level.subdirs.append(name)
        elif level.removing or not keep((*level.path, name)):
            os.unlink(name, dir_fd=level.fd)
