"""The relay: drains one outbox database into JetStream, in order, until each event is stored.

One task per outbox. It reads the oldest rows, sends them one at a time (the next only once
the previous one is acknowledged, so a new event never overtakes an older one, not even
across an outage), deletes what was stored, and backs off while the sink fails. It wakes when
a publisher says a row committed, and polls, for rows other processes staged or a crash left.

Exactly once. Every row carries its own ``Nats-Msg-Id``; the stream drops a copy of a message
id it stored within its duplicate window (two minutes). A row is sent again when its
acknowledgement was lost (timeout, disconnect) or its deletion was (crash, power failure),
and that second send may come any time later: after an outage, or when the node restarts.
So a row is sent *blind* only while it is young: while less than half the window has passed
since the earliest moment it can have been stored (when it was recorded, or when the stream
was last searched for it). An older row is first looked up in the stream (headers only, from
that moment on, less a window's slack for clocks), and skipped if it is there. The bound:
exactly once holds while the node's clock does not step by more than half the window between
recording and sending, and the node's and the NATS server's clocks differ by less than a
window; beyond the stream's ``max_age`` (seven days) an event is gone either way.

Never raises to a publisher once the event is recorded. :meth:`Relay.committed` waits (up to
``wait``) for the row to be stored, so in the healthy case an event is in JetStream when the
change returns; while the sink fails it returns at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Protocol, Self, TypeVar

from flotilla.common import errdefs
from flotilla.common.events import outbox
from flotilla.common.events.envelope import Event
from flotilla.common.events.outbox import Outbox, Recorded
from flotilla.common.settle import run_settled

__all__ = ["EventSink", "Relay"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_NS: Final = 1_000_000_000


class EventSink(Protocol):
    """Where a relay stores recorded events (JetStream, or a test's list)."""

    @property
    def duplicate_window(self) -> float:
        """Seconds within which the sink drops a second copy of a message id."""
        ...

    async def send(self, record: Recorded) -> None:
        """Store ``record``; return once stored (or found a duplicate). Raise while unable."""
        ...

    async def stored(self, records: Sequence[Recorded], since_ns: int) -> set[str]:
        """The message ids of ``records`` stored at or after ``since_ns``. Raise while unable."""
        ...


class Relay:
    """Relays the outbox in the SQLite database at ``path`` to ``sink``; ``async with`` runs it.

    It is both publishers: :meth:`publish` records in ``path`` (an outbox of the relay's own);
    :meth:`stage` records in a core's transaction on that same database.

    Args:
        path: the outbox database (created if missing).
        sink: where events go.
        wait: how long :meth:`committed` waits for a row to be stored, at most.
        poll: how often to look for rows nobody announced (other processes, a crash).
        batch: rows read at a time.
        backoff: first and longest pause after a failure (doubling, with jitter).
    """

    def __init__(
        self,
        path: Path,
        sink: EventSink,
        *,
        wait: float = 2.0,
        poll: float = 1.0,
        batch: int = 256,
        backoff: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        self.path = path
        self._sink = sink
        self._wait, self._poll, self._batch, self._backoff = wait, poll, batch, backoff
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="event-relay")
        self._outbox: Outbox | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._through = 0  # every row up to this id is stored
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._failing = False
        self._searched: dict[int, int] = {}  # row id -> when the stream was searched for it

    async def __aenter__(self) -> Self:
        self._outbox = await run_settled(self._thread, Outbox, self.path, discard=Outbox.close)
        self._task = asyncio.create_task(self._run(), name=f"event relay {self.path}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._release(everyone=True)
        if self._outbox is not None:
            await run_settled(self._thread, self._outbox.close)
        self._thread.shutdown()

    def stage(
        self, connection: sqlite3.Connection, namespace: str, topic: str, event: Event
    ) -> int:
        """Record ``event`` in the transaction open on ``connection``, a connection to ``path``.

        Raises:
            FailedPrecondition: if ``connection`` is to another database (nobody would relay
                the event) or in no transaction.
        """
        if not outbox.same_database(connection, self.path):
            raise errdefs.FailedPrecondition(f"event {topic} staged outside {self.path}")
        return outbox.stage(connection, namespace, topic, event)

    async def committed(self, row: int) -> None:
        """Relay ``row`` now; wait, briefly and only while the sink is healthy, until it is."""
        if self._task is None or self._task.done():
            return  # not running: the row waits, durable, for the next relay
        self._wake.set()
        if self._failing or row <= self._through:
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (row, waiter)
        self._waiters.append(entry)
        try:
            await asyncio.wait([waiter], timeout=self._wait)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    async def publish(self, namespace: str, topic: str, event: Event) -> None:
        """Record ``event`` durably in the relay's own outbox, then as :meth:`committed`.

        Raises:
            Unavailable: if the relay is not running or the event could not be recorded.
        """
        if self._outbox is None or self._task is None or self._task.done():
            raise errdefs.Unavailable(f"event {topic} not recorded: the relay is not running")
        try:
            row = await run_settled(self._thread, self._outbox.record, namespace, topic, event)
        except (OSError, sqlite3.Error) as err:
            kind = type(err).__name__
            raise errdefs.Unavailable(f"event {topic} not recorded ({kind})") from err
        await self.committed(row)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._drain()
            except Exception as err:  # the sink's and SQLite's: retried, never fatal
                failures += 1
                if not self._failing:
                    foreign = not isinstance(err, errdefs.ErrdefsError)
                    log.warning("events of %s wait: %s", self.path, err, exc_info=foreign)
                self._set_failing(True)
                await asyncio.sleep(self._pause(failures))
                continue
            if self._failing:
                log.info("events of %s flow again", self.path)
            failures = 0
            self._set_failing(False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _drain(self) -> None:
        """Relay until the outbox is empty; raise at the first failure."""
        assert self._outbox is not None
        while True:
            self._wake.clear()  # before reading: a row committed from now on wakes us again
            pending = await self._in_thread(self._outbox.pending, self._batch)
            self._advance(pending.floor - 1)
            for gone in [row_id for row_id in self._searched if row_id < pending.floor]:
                del self._searched[gone]  # relayed by another process
            if not pending.rows:
                return
            await self._deliver(pending.rows)

    async def _deliver(self, rows: list[Recorded]) -> None:
        assert self._outbox is not None
        done: list[int] = []
        try:
            found = await self._search(rows)
            for row in rows:
                if row.msg_id not in found:
                    if self._doubtful(row):
                        return  # grew old meanwhile: search again first
                    await self._sink.send(row)
                done.append(row.id)
                self._set_failing(False)
                self._advance(row.id)
        finally:
            if done:
                await self._in_thread(self._outbox.remove, done)

    async def _search(self, rows: list[Recorded]) -> set[str]:
        """Which of the rows too old to send blind the stream already holds."""
        doubtful = [row for row in rows if self._doubtful(row)]
        if not doubtful:
            return set()
        started = time.time_ns()
        slack = int(self._sink.duplicate_window * _NS)
        since = min(self._earliest(row) for row in doubtful) - slack
        found = await self._sink.stored(doubtful, since)
        for row in doubtful:
            if row.msg_id not in found:
                self._searched[row.id] = started
        return found

    def _earliest(self, row: Recorded) -> int:
        """When (ns, node clock) a copy of ``row`` no search has seen can first have been stored."""
        return max(row.recorded_at, self._searched.get(row.id, 0))

    def _doubtful(self, row: Recorded) -> bool:
        """Whether a copy may be stored outside the duplicate window by the time we send."""
        blind_for = self._sink.duplicate_window / 2
        return time.time_ns() - self._earliest(row) >= blind_for * _NS

    def _advance(self, through: int) -> None:
        if through > self._through:
            self._through = through
            self._release()

    def _set_failing(self, failing: bool) -> None:
        self._failing = failing
        if failing:
            self._release(everyone=True)

    def _release(self, *, everyone: bool = False) -> None:
        for row, waiter in self._waiters:
            if (everyone or row <= self._through) and not waiter.done():
                waiter.set_result(None)

    def _pause(self, failures: int) -> float:
        first, longest = self._backoff
        return min(longest, first * 2.0 ** min(failures - 1, 30)) * random.uniform(0.5, 1.0)

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await run_settled(self._thread, fn, *args)
