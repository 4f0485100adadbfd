"""Server-side objects that outlive one request (an open writer, an open reader), under a lease.

A caller opens a session, names it in later requests, and closes it. A session not touched for
``lease`` seconds is closed by the reaper, so a caller that vanished (crashed, lost its network)
never holds a lock for ever. Sessions belong to a namespace: naming one from another namespace is
NotFound, exactly as if it did not exist.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from flotilla.common import errdefs

__all__ = ["DEFAULT_MAX_PER_CALLER", "DEFAULT_MAX_SESSIONS", "Sessions"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_SESSIONS: Final = 1024
"""Sessions of one kind a service holds at most (each may hold files and a lock)."""
DEFAULT_MAX_PER_CALLER: Final = 256
"""Sessions of one kind one caller (one bus connection) holds at most."""


@dataclass
class _Entry(Generic[T]):
    namespace: str
    caller: str
    value: T
    touched: float
    busy: int = 0


class Sessions(Generic[T]):
    """Open sessions of one kind, each closed by ``close`` when done or expired.

    Bounded: past ``max_total`` sessions, or ``max_per_caller`` for one caller, opening another
    is ResourceExhausted (and the value is closed), so one caller that never closes what it
    opens cannot exhaust the service's file descriptors for everyone.

    Args:
        kind: what a session holds, for messages (``writer``, ``reader``).
        close: releases a session's value.
        lease: seconds a session may sit idle before the reaper closes it.
        max_total: sessions held at most.
        max_per_caller: sessions one caller holds at most.
        exclusive: one request at a time per session; another one meanwhile is
            FailedPrecondition (a commit never lands between the chunks of a write).
    """

    def __init__(
        self,
        kind: str,
        close: Callable[[T], Awaitable[None]],
        lease: float,
        *,
        max_total: int = DEFAULT_MAX_SESSIONS,
        max_per_caller: int = DEFAULT_MAX_PER_CALLER,
        exclusive: bool = False,
    ) -> None:
        self.kind = kind
        self.lease = lease
        self.max_total = max_total
        self.max_per_caller = max_per_caller
        self.exclusive = exclusive
        self._close = close
        self._entries: dict[str, _Entry[T]] = {}
        self._per_caller: collections.Counter[str] = collections.Counter()
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    async def add(self, namespace: str, caller: str, value: T) -> str:
        """Register ``value`` for ``caller`` and return its session id.

        Raises:
            ResourceExhausted: past a bound; ``value`` is closed.
        """
        if refusal := self._over_bound(caller):
            await self._close_quietly(value, "refused")
            raise errdefs.ResourceExhausted(refusal)
        token = secrets.token_hex(12)
        self._entries[token] = _Entry(namespace, caller, value, time.monotonic())
        self._per_caller[caller] += 1
        return token

    def _over_bound(self, caller: str) -> str | None:
        if len(self._entries) >= self.max_total:
            return f"{self.max_total} {self.kind} sessions open; close some or retry later"
        if self._per_caller[caller] >= self.max_per_caller:
            return f"this caller holds {self.max_per_caller} {self.kind} sessions; close some"
        return None

    @contextlib.contextmanager
    def use(self, namespace: str, token: str) -> Iterator[T]:
        """Hold the session while a request works with it (the reaper leaves it alone)."""
        entry = self._entry(namespace, token)
        if self.exclusive and entry.busy:
            raise errdefs.FailedPrecondition(f"{self.kind} session is busy with another request")
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
        return self._forget(token, entry)

    def _forget(self, token: str, entry: _Entry[T]) -> T:
        del self._entries[token]
        self._per_caller[entry.caller] -= 1
        if not self._per_caller[entry.caller]:
            del self._per_caller[entry.caller]
        return entry.value

    async def close(self, namespace: str, token: str) -> None:
        """Close one session.

        Raises:
            NotFound: if there is no such session.
            FailedPrecondition: if the sessions are exclusive and this one is in use.
        """
        entry = self._entry(namespace, token)
        if self.exclusive and entry.busy:
            raise errdefs.FailedPrecondition(f"{self.kind} session is busy with another request")
        await self._close(self._forget(token, entry))

    async def reap(self) -> int:
        """Close every idle session whose lease ran out; return how many."""
        now = time.monotonic()
        expired = [
            t for t, e in self._entries.items() if not e.busy and now - e.touched > self.lease
        ]
        for token in expired:
            entry = self._entries[token]
            log.info("session expired", extra={"kind": self.kind, "namespace": entry.namespace})
            await self._close_quietly(self._forget(token, entry), "expired")
        return len(expired)

    async def _close_quietly(self, value: T, why: str) -> None:
        """Close ``value``; a failure is logged, never raised (the session is gone either way)."""
        try:
            await self._close(value)
        except Exception as err:
            log.warning(
                "closing a session failed",
                extra={"kind": self.kind, "why": why, "error": type(err).__name__},
                exc_info=not isinstance(err, errdefs.ErrdefsError),
            )

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(max(self.lease / 4, 0.05))
            try:
                await self.reap()
            except Exception:
                log.exception("reaping sessions failed", extra={"kind": self.kind})

    async def __aenter__(self) -> Sessions[T]:
        self._reaper = asyncio.create_task(self._reap_forever())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for token, entry in list(self._entries.items()):
            await self._close_quietly(self._forget(token, entry), "service stopping")
