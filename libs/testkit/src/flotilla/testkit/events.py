"""Test doubles for the event ports, for unit tests of a pure core (no NATS).

- :class:`RecordingPublisher`: both publishers; an event counts as published once the core
  said its transaction committed.
- :class:`RecordingSink`: a relay's sink that keeps what it is sent, and can be made to fail.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence

from flotilla.common import errdefs
from flotilla.common.events import Event
from flotilla.common.events.outbox import Recorded

__all__ = ["RecordingPublisher", "RecordingSink"]


class RecordingPublisher:
    """An in-memory ``EventPublisher`` and ``TransactionalPublisher``.

    Attributes:
        published: ``(namespace, topic, event)`` in the order they were published or committed.
        staged: events staged in a transaction that has not (yet) committed, by row.
    """

    def __init__(self) -> None:
        self.published: list[tuple[str, str, Event]] = []
        self.staged: dict[int, tuple[str, str, Event]] = {}
        self._rows = itertools.count(1)

    async def publish(self, namespace: str, topic: str, event: Event) -> None:
        """Remember the event."""
        self.published.append((namespace, topic, event))

    def stage(
        self, connection: sqlite3.Connection, namespace: str, topic: str, event: Event
    ) -> int:
        """Remember the event until its transaction commits."""
        row = next(self._rows)
        self.staged[row] = (namespace, topic, event)
        return row

    async def committed(self, row: int) -> None:
        """The event of ``row`` is published."""
        self.published.append(self.staged.pop(row))


class RecordingSink:
    """A relay sink that keeps what it is sent, de-duplicating by message id as JetStream does.

    Attributes:
        sent: every record sent, copies included, in order.
        stored_ids: the message ids stored, once each, in order.
        failing: while true, every call raises Unavailable.
        searches: how many times the relay asked what was stored.
    """

    def __init__(self, duplicate_window: float = 120.0) -> None:
        self.sent: list[Recorded] = []
        self.stored_ids: list[str] = []
        self.failing = False
        self.searches = 0
        self._window = duplicate_window

    @property
    def duplicate_window(self) -> float:
        """As configured."""
        return self._window

    async def send(self, record: Recorded) -> None:
        """Store ``record`` unless its id is stored already."""
        self._check()
        self.sent.append(record)
        if record.msg_id not in self.stored_ids:
            self.stored_ids.append(record.msg_id)

    async def stored(self, records: Sequence[Recorded], since_ns: int) -> set[str]:
        """The ids of ``records`` stored (whenever: a list has no clock)."""
        self._check()
        self.searches += 1
        return {record.msg_id for record in records} & set(self.stored_ids)

    def _check(self) -> None:
        if self.failing:
            raise errdefs.Unavailable("sink is failing")
