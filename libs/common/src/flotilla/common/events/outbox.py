"""The event outbox: events recorded in SQLite with (or as) the change, until JetStream has them.

Blocking: call from a worker thread. One table, ``event_outbox``, in any SQLite database:

- a core with a database of its own calls :func:`install` with its schema and
  :func:`stage` inside the write transaction that makes a change, so the change and its
  event commit (or roll back) together;
- a core without one records through :meth:`Outbox.record`, a transaction of its own
  (``synchronous=FULL``: durable once it returns).

A relay (:mod:`flotilla.common.events.relay`) reads rows in ``id`` order and deletes each once
JetStream acknowledged it. ``id`` is ``AUTOINCREMENT``: SQLite has one writer at a time, so
``id`` order is commit order, and an id is never reused, even once the table was empty, so
"every row below ``id`` is gone" stays true for ever. Each row carries its own JetStream
message id (``Nats-Msg-Id``), random and unique for ever, so a copy of the database (a
restored backup) never makes another node's events look like duplicates.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, NamedTuple

from flotilla.common.errdefs import FailedPrecondition
from flotilla.common.events.envelope import Event, encode_envelope, envelope_for
from flotilla.common.files import make_dirs

__all__ = [
    "Outbox",
    "Pending",
    "Recorded",
    "connect",
    "install",
    "same_database",
    "stage",
    "transaction",
]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS event_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id      TEXT    NOT NULL,  -- JetStream's Nats-Msg-Id
    subject     TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL,  -- nanoseconds since the epoch: the envelope's timestamp
    envelope    BLOB    NOT NULL   -- msgpack, exactly as stored in JetStream
)
"""
_COLUMNS: Final = "id, msg_id, subject, namespace, recorded_at, envelope"
_BUSY_TIMEOUT_S: Final = 30.0


class Recorded(NamedTuple):
    """One event waiting in an outbox."""

    id: int
    msg_id: str
    subject: str
    namespace: str
    recorded_at: int
    envelope: bytes


class Pending(NamedTuple):
    """The oldest rows of an outbox, as one snapshot."""

    rows: list[Recorded]
    floor: int
    """Every row with a smaller id was relayed (and is gone)."""


def install(connection: sqlite3.Connection) -> None:
    """Create the outbox table in ``connection``'s database if it is missing."""
    connection.execute(_SCHEMA)


def stage(connection: sqlite3.Connection, namespace: str, topic: str, event: Event) -> int:
    """Record ``event`` in the write transaction open on ``connection``; its row id.

    Raises:
        FailedPrecondition: if ``connection`` is in autocommit mode outside a transaction:
            the event would commit apart from the change it describes.
        InvalidArgument: if ``topic`` cannot be an event subject.
    """
    if connection.isolation_level is None and not connection.in_transaction:
        raise FailedPrecondition(f"event {topic} staged outside a transaction")
    envelope = envelope_for(namespace, topic, event)
    cursor = connection.execute(
        "INSERT INTO event_outbox (msg_id, subject, namespace, recorded_at, envelope) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            uuid.uuid4().hex,
            envelope.subject,
            namespace,
            envelope.timestamp,
            encode_envelope(envelope),
        ),
    )
    assert cursor.lastrowid is not None  # an INSERT into a rowid table
    return cursor.lastrowid


def same_database(connection: sqlite3.Connection, path: Path) -> bool:
    """Whether ``connection``'s main database is the file at ``path``."""
    main = connection.execute("PRAGMA database_list").fetchone()
    if main is None or not main[2]:
        return False  # in memory, or a temporary database
    try:
        return os.path.samefile(main[2], path)
    except FileNotFoundError:
        return False


class Outbox:
    """One outbox database as its relay sees it. Use from one thread at a time.

    Two connections: events are recorded with ``synchronous=FULL`` (durable once committed);
    the relay's deletions with ``NORMAL``, which a power failure may undo: that only relays
    the event again, and JetStream drops the copy (see the relay).

    Args:
        path: the database file, created (with its directory) if missing; it may also hold
            the tables of the core that stages events into it.
    """

    def __init__(self, path: Path) -> None:
        make_dirs(path.parent)
        self.path = path
        self._writer = connect(path, synchronous="FULL")
        self._relay = connect(path, synchronous="NORMAL")
        with transaction(self._writer):
            install(self._writer)

    def close(self) -> None:
        """Close both connections."""
        self._writer.close()
        self._relay.close()

    def record(self, namespace: str, topic: str, event: Event) -> int:
        """Record ``event`` durably in a transaction of its own; its row id."""
        with transaction(self._writer):
            return stage(self._writer, namespace, topic, event)

    def pending(self, limit: int) -> Pending:
        """Up to ``limit`` of the oldest rows, oldest first."""
        self._relay.execute("BEGIN")  # one snapshot for both reads
        try:
            rows = [
                Recorded(*row)
                for row in self._relay.execute(
                    f"SELECT {_COLUMNS} FROM event_outbox ORDER BY id LIMIT ?", (limit,)
                )
            ]
            floor = rows[0].id if rows else self._next_id()
        finally:
            self._relay.execute("COMMIT")
        return Pending(rows, floor)

    def remove(self, ids: Sequence[int]) -> None:
        """Forget rows JetStream has stored."""
        with transaction(self._relay):
            self._relay.executemany("DELETE FROM event_outbox WHERE id = ?", [(i,) for i in ids])

    def _next_id(self) -> int:
        row = self._relay.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'event_outbox'"
        ).fetchone()
        return (int(row[0]) if row else 0) + 1


def connect(path: Path, *, synchronous: str) -> sqlite3.Connection:
    """A connection in WAL mode, autocommit unless a transaction is begun, any thread."""
    connection = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    return connection


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """A write transaction holding the database's (cross-process) write lock."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
