"""The snapshot records of one node: SQLite (blocking; use from one thread at a time).

One row per snapshot: its numeric id (which names its directory, short enough that 128
layers of overlay lower directories fit a mount's options), namespace, key, snapshotter,
kind, parent id, labels, times, and for committed snapshots the size and inodes measured at
commit. The database is also the service's event outbox
(:mod:`flotilla.common.events.outbox`): an event is staged in the transaction of its change.

A :class:`~flotilla.common.events.database.StagingDatabase`: a transaction orders a record
with the directory rename that goes with it. Ids are ``AUTOINCREMENT``, so an id a crashed
transaction handed out is never handed out again and a stale directory can never be taken for
a new snapshot's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from flotilla.common.errdefs import AlreadyExists, InvalidArgument, NotFound
from flotilla.common.events.database import StagingDatabase
from flotilla.common.times import from_ns, to_ns
from flotilla.snapshots.snapshotter import Info, Kind, Usage

__all__ = ["MetaStore", "Record"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshotter TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    parent_id   INTEGER REFERENCES snapshots (id),
    labels      TEXT    NOT NULL,  -- JSON object
    created_at  INTEGER NOT NULL,  -- nanoseconds since the epoch
    updated_at  INTEGER NOT NULL,
    size        INTEGER NOT NULL DEFAULT 0,
    inodes      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (snapshotter, namespace, key)
);
CREATE INDEX IF NOT EXISTS snapshots_by_parent ON snapshots (parent_id);
"""
_COLUMNS: Final = (
    "s.id, s.key, s.kind, p.key, s.labels, s.created_at, s.updated_at, s.size, s.inodes"
)
_SELECT: Final = f"SELECT {_COLUMNS} FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id"


@dataclass(frozen=True, slots=True)
class Record:
    """A stored snapshot: its public :class:`Info`, its id, and the measured usage."""

    id: int
    info: Info
    usage: Usage = field(default_factory=Usage)


def _record(row: tuple[int, str, str, str | None, str, int, int, int, int]) -> Record:
    ident, key, kind, parent, labels, created, updated, size, inodes = row
    info = Info(
        name=key,
        kind=Kind(kind),
        parent=parent or "",
        labels=json.loads(labels),
        created_at=from_ns(created),
        updated_at=from_ns(updated),
    )
    return Record(ident, info, Usage(size, inodes))


class MetaStore(StagingDatabase):
    """Every snapshotter's records on one node. Use from one thread at a time."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def find(self, snapshotter: str, namespace: str, key: str) -> Record | None:
        """The snapshot ``key``, or ``None``."""
        row = self._db.execute(
            f"{_SELECT} WHERE s.snapshotter = ? AND s.namespace = ? AND s.key = ?",
            (snapshotter, namespace, key),
        ).fetchone()
        return _record(row) if row else None

    def get(self, snapshotter: str, namespace: str, key: str) -> Record:
        """The snapshot ``key``.

        Raises:
            NotFound: no such snapshot.
        """
        found = self.find(snapshotter, namespace, key)
        if found is None:
            raise NotFound(f"snapshot {key} does not exist")
        return found

    def parent_ids(self, ident: int) -> list[int]:
        """The ids of ``ident``'s ancestors, nearest first."""
        rows = self._db.execute(
            "WITH RECURSIVE chain(id, parent_id, depth) AS ("
            " SELECT id, parent_id, 0 FROM snapshots WHERE id = ?"
            " UNION ALL SELECT s.id, s.parent_id, chain.depth + 1"
            " FROM snapshots s JOIN chain ON s.id = chain.parent_id)"
            " SELECT id FROM chain WHERE depth > 0 ORDER BY depth",
            (ident,),
        ).fetchall()
        return [row[0] for row in rows]

    def committed_parent(self, snapshotter: str, namespace: str, parent: str) -> Record | None:
        """The committed snapshot ``parent`` (``None`` for no parent).

        Raises:
            NotFound: no snapshot ``parent``.
            InvalidArgument: ``parent`` is not committed (containerd's class for it).
        """
        if not parent:
            return None
        found = self.find(snapshotter, namespace, parent)
        if found is None:
            raise NotFound(f"parent snapshot {parent} does not exist")
        if found.info.kind is not Kind.COMMITTED:
            raise InvalidArgument(f"parent snapshot {parent} is not committed snapshot")
        return found

    def insert(self, snapshotter: str, namespace: str, info: Info, parent_id: int | None) -> int:
        """Record a new snapshot in the open transaction; its id.

        Raises:
            AlreadyExists: the key is taken.
        """
        if self.find(snapshotter, namespace, info.name) is not None:
            raise AlreadyExists(f"snapshot {info.name} already exists")
        cursor = self._db.execute(
            "INSERT INTO snapshots (snapshotter, namespace, key, kind, parent_id, labels,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                snapshotter,
                namespace,
                info.name,
                info.kind.value,
                parent_id,
                json.dumps(dict(info.labels)),
                to_ns(info.created_at),
                to_ns(info.updated_at),
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def commit(self, ident: int, info: Info, usage: Usage, parent_id: int | None) -> None:
        """Make ``ident`` the committed snapshot ``info`` in the open transaction.

        ``parent_id``: the parent it is rebased onto; ``None`` keeps the one it has.
        """
        self._db.execute(
            "UPDATE snapshots SET key = ?, kind = ?, labels = ?, updated_at = ?, size = ?,"
            " inodes = ?, parent_id = COALESCE(?, parent_id) WHERE id = ?",
            (
                info.name,
                Kind.COMMITTED.value,
                json.dumps(dict(info.labels)),
                to_ns(info.updated_at),
                usage.size,
                usage.inodes,
                parent_id,
                ident,
            ),
        )

    def set_labels(self, ident: int, labels: Mapping[str, str], updated_ns: int) -> None:
        """Replace ``ident``'s labels in the open transaction."""
        self._db.execute(
            "UPDATE snapshots SET labels = ?, updated_at = ? WHERE id = ?",
            (json.dumps(dict(labels)), updated_ns, ident),
        )

    def children(self, ident: int) -> int:
        """How many snapshots have ``ident`` as their parent."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM snapshots WHERE parent_id = ?", (ident,)
        ).fetchone()
        return int(row[0])

    def delete(self, ident: int) -> None:
        """Remove the record ``ident`` in the open transaction."""
        self._db.execute("DELETE FROM snapshots WHERE id = ?", (ident,))

    def page(self, snapshotter: str, namespace: str, after: str, limit: int) -> list[Record]:
        """Up to ``limit`` of the namespace's snapshots with keys after ``after``, by key."""
        rows = self._db.execute(
            f"{_SELECT} WHERE s.snapshotter = ? AND s.namespace = ? AND s.key > ?"
            " ORDER BY s.key LIMIT ?",
            (snapshotter, namespace, after, limit),
        ).fetchall()
        return [_record(row) for row in rows]

    def namespaces(self, snapshotter: str) -> list[str]:
        """The namespaces with a record of ``snapshotter``, sorted."""
        rows = self._db.execute(
            "SELECT DISTINCT namespace FROM snapshots WHERE snapshotter = ? ORDER BY namespace",
            (snapshotter,),
        )
        return [row[0] for row in rows]

    def ids(self, snapshotter: str) -> set[int]:
        """Every id a record of ``snapshotter`` owns."""
        rows = self._db.execute("SELECT id FROM snapshots WHERE snapshotter = ?", (snapshotter,))
        return {row[0] for row in rows}
