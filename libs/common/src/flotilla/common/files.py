"""Durable files: what a crash may not tear (blocking; call them from a worker thread).

A file replaced with :func:`write_atomic` is seen old or new, whole; a directory made with
:func:`make_dirs` or changed and then :func:`fsync_dir`-ed keeps its entries after a crash.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "make_dirs", "pwrite_all", "write_atomic"]


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` that also makes each newly created directory's entry durable."""
    if path.is_dir():
        return
    make_dirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    fsync_dir(path.parent)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd`` (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, whole.

    With ``durable``, that also holds after a crash; without, a crash may leave an empty or
    missing file, which is cheaper (no fsync) where the caller copes with that.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        pwrite_all(fd, data, 0)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)
