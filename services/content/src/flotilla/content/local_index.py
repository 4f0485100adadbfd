"""The metadata index of :class:`~flotilla.content.local.LocalStore`: SQLite (blocking).

A :class:`~flotilla.common.events.database.StagingDatabase`: its write lock also orders the
store's blob-file renames against concurrent commits and deletes. One row per (namespace,
digest) says that the namespace sees the blob, with its size, times and labels; the file
itself is stored once per node.
The database is also the store's event outbox (:mod:`flotilla.common.events.outbox`): an
event is staged in the transaction of the change it announces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from flotilla.common.events.database import StagingDatabase
from flotilla.common.times import from_ns, to_ns
from flotilla.content.store import Info

__all__ = ["BlobIndex"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS blobs (
    namespace  TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,  -- nanoseconds since the epoch
    updated_at INTEGER NOT NULL,
    labels     TEXT    NOT NULL,  -- JSON object
    PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_digest ON blobs (digest);
"""
_COLUMNS: Final = "digest, size, created_at, updated_at, labels"

_Row = tuple[str, int, int, int, str]


class BlobIndex(StagingDatabase):
    """Which namespace sees which blob, with its labels. Use from one thread at a time."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def get(self, namespace: str, digest: str) -> Info | None:
        """The blob as ``namespace`` sees it, if it does."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM blobs WHERE namespace = ? AND digest = ?",
            (namespace, digest),
        ).fetchone()
        return _info(row) if row else None

    def page(self, namespace: str, after: str, limit: int) -> list[Info]:
        """Up to ``limit`` of the namespace's blobs with digests sorting after ``after``."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM blobs WHERE namespace = ? AND digest > ? "
            "ORDER BY digest LIMIT ?",
            (namespace, after, limit),
        ).fetchall()
        return [_info(row) for row in rows]

    def insert(self, namespace: str, info: Info) -> None:
        """Make ``info.digest`` visible in ``namespace``."""
        self._db.execute(
            f"INSERT INTO blobs (namespace, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (namespace, info.digest, info.size, *_times(info), _labels(info.labels)),
        )

    def set_labels(
        self, namespace: str, digest: str, labels: Mapping[str, str], updated_ns: int
    ) -> None:
        """Replace the labels of a blob the namespace sees."""
        self._db.execute(
            "UPDATE blobs SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?",
            (_labels(labels), updated_ns, namespace, digest),
        )

    def remove(self, namespace: str, digest: str) -> bool:
        """Hide the blob from ``namespace``; whether it was visible."""
        cursor = self._db.execute(
            "DELETE FROM blobs WHERE namespace = ? AND digest = ?", (namespace, digest)
        )
        return cursor.rowcount > 0

    def referenced(self, digest: str) -> bool:
        """Whether any namespace still sees ``digest``."""
        row = self._db.execute("SELECT 1 FROM blobs WHERE digest = ? LIMIT 1", (digest,))
        return row.fetchone() is not None

    def namespaces(self) -> list[str]:
        """Every namespace that sees some blob, sorted."""
        rows = self._db.execute("SELECT DISTINCT namespace FROM blobs ORDER BY namespace")
        return [row[0] for row in rows]

    def digests(self) -> set[str]:
        """Every digest some namespace sees."""
        return {row[0] for row in self._db.execute("SELECT DISTINCT digest FROM blobs")}


def _info(row: _Row) -> Info:
    digest, size, created_ns, updated_ns, labels = row
    return Info(
        digest=digest,
        size=size,
        created_at=from_ns(created_ns),
        updated_at=from_ns(updated_ns),
        labels=json.loads(labels),
    )


def _times(info: Info) -> tuple[int, int]:
    return to_ns(info.created_at), to_ns(info.updated_at)


def _labels(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))
