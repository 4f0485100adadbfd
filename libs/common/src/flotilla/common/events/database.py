"""A core's own SQLite database, holding its records and its event outbox (blocking).

Why SQLite: it is in the standard library and crash-safe (WAL with ``synchronous=FULL``: a
committed transaction survives power loss), and ``BEGIN IMMEDIATE`` gives every process on
the node one write lock, which a core also uses to order the file renames that go with its
records. An event is staged in the transaction of the change it announces
(:mod:`flotilla.common.events.outbox`), and a relay of the same file stores it in JetStream.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from flotilla.common.events import outbox
from flotilla.common.events.envelope import Event
from flotilla.common.events.ports import TransactionalPublisher

__all__ = ["StagingDatabase"]


class StagingDatabase:
    """A core's records and outbox in one SQLite file. Use from one thread at a time.

    Args:
        path: the database file.
        schema: the core's ``CREATE ... IF NOT EXISTS`` statements, ``;``-separated.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self._db: sqlite3.Connection = outbox.connect(path, synchronous="FULL")
        self._db.execute("PRAGMA foreign_keys=ON")  # only outside a transaction
        with self.transaction():
            for statement in schema.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            outbox.install(self._db)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction holding the database's (cross-process) write lock."""
        with outbox.transaction(self._db):
            yield

    def stage(
        self, events: TransactionalPublisher, namespace: str, topic: str, event: Event
    ) -> int:
        """Stage ``event`` in the open transaction; its outbox row."""
        return events.stage(self._db, namespace, topic, event)
