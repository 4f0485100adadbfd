"""Server-side objects that outlive one request (an open writer, an open reader), under a lease.

A caller opens a session, names it in later requests, and closes it. A session not touched for
``lease`` seconds is closed by the reaper, so a caller that vanished (crashed, lost its network)
never holds a lock for ever. Sessions belong to a namespace: naming one from another namespace is
NotFound, exactly as if it did not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from flotilla.common import errdefs

__all__ = ["Sessions"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    namespace: str
    value: T
    touched: float
    busy: int = 0


class Sessions(Generic[T]):
    """Open sessions of one kind, each closed by ``close`` when done or expired.

    Args:
        kind: what a session holds, for messages (``writer``, ``reader``).
        close: releases a session's value.
        lease: seconds a session may sit idle before the reaper closes it.
    """

    def __init__(self, kind: str, close: Callable[[T], Awaitable[None]], lease: float) -> None:
        self.kind = kind
        self.lease = lease
        self._close = close
        self._entries: dict[str, _Entry[T]] = {}
        self._reaper: asyncio.Task[None] | None = None

    def add(self, namespace: str, value: T) -> str:
        """Register ``value`` and return its session id."""
        token = secrets.token_hex(12)
        self._entries[token] = _Entry(namespace, value, time.monotonic())
        return token

    @contextlib.contextmanager
    def use(self, namespace: str, token: str) -> Iterator[T]:
        """Hold the session while a request works with it (the reaper leaves it alone)."""
        entry = self._entry(namespace, token)
        entry.busy += 1
        try:
            yield entry.value
        finally:
            entry.busy -= 1
            entry.touched = time.monotonic()

    def _entry(self, namespace: str, token: str) -> _Entry[T]:
        entry = self._entries.get(token)
        if entry is None or entry.namespace != namespace:
            raise errdefs.NotFound(f"{self.kind} session {token!r} (closed or expired)")
        return entry

    def pop(self, namespace: str, token: str) -> T:
        """Forget the session and return its value (the caller closes it)."""
        entry = self._entry(namespace, token)
        del self._entries[token]
        return entry.value

    async def close(self, namespace: str, token: str) -> None:
        """Close one session."""
        await self._close(self.pop(namespace, token))

    async def reap(self) -> int:
        """Close every idle session whose lease ran out; return how many."""
        now = time.monotonic()
        expired = [
            t for t, e in self._entries.items() if not e.busy and now - e.touched > self.lease
        ]
        for token in expired:
            entry = self._entries.pop(token)
            log.info("session expired", extra={"kind": self.kind, "namespace": entry.namespace})
            with contextlib.suppress(errdefs.ErrdefsError):
                await self._close(entry.value)
        return len(expired)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(max(self.lease / 4, 0.05))
            await self.reap()

    async def __aenter__(self) -> Sessions[T]:
        self._reaper = asyncio.create_task(self._reap_forever())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for token in list(self._entries):
            with contextlib.suppress(errdefs.ErrdefsError):
                await self._close(self._entries.pop(token).value)
