"""Helpers of :class:`~flotilla.content.local.LocalStore`: times, durable files, threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

from flotilla.content.store import EPOCH

__all__ = [
    "from_ns",
    "fsync_dir",
    "make_dirs",
    "pwrite_all",
    "run_settled",
    "settled",
    "to_ns",
    "write_atomic",
]

T = TypeVar("T")

_MICROSECOND: Final = 1_000


def from_ns(nanoseconds: int) -> datetime:
    """A UTC datetime from nanoseconds since the epoch (to the microsecond)."""
    return EPOCH + timedelta(microseconds=nanoseconds // _MICROSECOND)


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    return (moment.astimezone(UTC) - EPOCH) // timedelta(microseconds=1) * _MICROSECOND


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
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


async def settled(awaitable: Awaitable[T], discard: Callable[[T], object] | None = None) -> T:
    """Await ``awaitable`` to its end even if the caller is cancelled meanwhile, then re-raise.

    For work that must not stop half-way: a thread cannot be interrupted, so nothing else may
    touch the state it uses until it is done; a commit must not stop between making a blob
    durable and announcing it. ``discard`` disposes of a result nobody will receive (e.g.
    closes a file descriptor).
    """
    future = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if discard is not None and not future.cancelled() and future.exception() is None:
            discard(future.result())
        raise


async def run_settled(
    executor: concurrent.futures.Executor | None,
    fn: Callable[..., T],
    *args: object,
    discard: Callable[[T], object] | None = None,
) -> T:
    """Run ``fn(*args)`` in ``executor``, :func:`settled`."""
    loop = asyncio.get_running_loop()
    return await settled(loop.run_in_executor(executor, functools.partial(fn, *args)), discard)
