"""Work that must not stop half-way, even when its caller is cancelled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["run_settled", "settled"]

T = TypeVar("T")


async def settled(awaitable: Awaitable[T], discard: Callable[[T], object] | None = None) -> T:
    """Await ``awaitable`` to its end even if the caller is cancelled meanwhile, then re-raise.

    For work that must not stop half-way: a thread cannot be interrupted, so nothing else may
    touch the state it uses until it is done; a commit must not stop between making a change
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
    """Run ``fn(*args)`` in ``executor`` (the loop's default when ``None``), :func:`settled`."""
    loop = asyncio.get_running_loop()
    return await settled(loop.run_in_executor(executor, functools.partial(fn, *args)), discard)
