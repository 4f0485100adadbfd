"""Committed blobs of :class:`~flotilla.content.local.LocalStore`: files and index, in step.

Blocking: the store calls these from its single database thread.

- ``blobs/<alg>/<hex>``: each blob's bytes, once per node, read-only.
- ``metadata.db``: which namespace sees which blob (:class:`BlobIndex`), and the events
  about them not yet stored in JetStream (the outbox).
- ``trash/``: blobs being deleted.

Every change of a blob file happens inside an index write transaction, which orders it
against other processes' commits and deletes, and the file system is brought back in line
with the index at start-up (:meth:`Blobs.recover`), so a crash at any point leaves either
the old or the new state:

- commit *hard-links* the verified, fsync-ed ingest data to its blob path, fsyncs the
  directory and inserts the row. Linking (not renaming) keeps the ingest whole until the
  transaction is durable; a crash in between leaves a blob file no row names, which
  start-up removes, and the ingest, which can be committed again. ``/content/create`` is
  staged in the same transaction: the blob and its event commit together.
- delete removes the row and, when no namespace sees the digest any more, renames the file
  into ``trash/`` before the transaction commits; only then is it unlinked. A crash in
  between rolls the row back and start-up renames the file back (open readers keep their
  file descriptor throughout). ``/content/delete`` is staged in the same transaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from flotilla.common import digests
from flotilla.common import labels as label_rules
from flotilla.common.digests import Digest
from flotilla.common.errdefs import AlreadyExists, DataLoss, InvalidArgument, NotFound
from flotilla.common.events import TransactionalPublisher
from flotilla.common.files import fsync_dir, make_dirs
from flotilla.common.times import from_ns
from flotilla.content.events import TOPIC_CREATE, TOPIC_DELETE, ContentCreate, ContentDelete
from flotilla.content.local_index import BlobIndex
from flotilla.content.store import Info

__all__ = ["Blobs", "database"]

_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class Blobs:
    """The committed half of the local store. Use from one thread at a time.

    Args:
        root: the store's directory.
        events: where commits and deletes stage their events.
    """

    def __init__(self, root: Path, events: TransactionalPublisher) -> None:
        self._blobs = root / "blobs"
        self._trash = root / "trash"
        make_dirs(self._blobs)
        make_dirs(self._trash)
        self._index = BlobIndex(database(root))
        self._events = events

    def close(self) -> None:
        """Close the index."""
        self._index.close()

    def path(self, digest: Digest) -> Path:
        """Where the bytes of ``digest`` are, if some namespace sees it."""
        return self._blobs / digest.algorithm / digest.encoded

    def info(self, namespace: str, digest: Digest) -> Info:
        """The blob as ``namespace`` sees it.

        Raises:
            NotFound: if it does not.
        """
        info = self._index.get(namespace, str(digest))
        if info is None:
            raise NotFound(f"content {digest}")
        return info

    def open(self, namespace: str, digest: Digest) -> tuple[int, int]:
        """A read-only file descriptor on the blob, and its size.

        Raises:
            NotFound: if ``namespace`` does not see the blob.
            DataLoss: if it does but the file is gone.
        """
        info = self.info(namespace, digest)
        try:
            return os.open(self.path(digest), os.O_RDONLY | os.O_CLOEXEC), info.size
        except FileNotFoundError:
            # Deleted by another process since we looked, or lost.
            if self._index.get(namespace, info.digest) is None:
                raise NotFound(f"content {digest}") from None
            raise DataLoss(f"content {digest}: blob file is missing") from None

    def page(self, namespace: str, after: str, limit: int) -> list[Info]:
        """Up to ``limit`` blobs of ``namespace`` whose digests sort after ``after``."""
        return self._index.page(namespace, after, limit)

    def namespaces(self) -> list[str]:
        """Every namespace that sees some blob, sorted."""
        return self._index.namespaces()

    def update(self, namespace: str, info: Info, fieldpaths: Sequence[str]) -> Info:
        """Apply an Update (see :func:`flotilla.common.labels.updated`) atomically."""
        digest = digests.parse(info.digest)
        with self._index.transaction():
            current = self.info(namespace, digest)
            labels = label_rules.updated(current.labels, info.labels, fieldpaths)
            now = time.time_ns()
            self._index.set_labels(namespace, str(digest), labels, now)
        return dataclasses.replace(current, labels=labels, updated_at=from_ns(now))

    def commit(
        self, namespace: str, digest: Digest, size: int, labels: Mapping[str, str], data: Path
    ) -> tuple[Info, int]:
        """Make the verified, durable ingest ``data`` visible as ``digest`` in ``namespace``.

        ``data`` is left in place for the caller to remove with its ingest.

        Returns:
            The blob's info, and the outbox row of its ``/content/create``.

        Raises:
            AlreadyExists: if the namespace already sees ``digest``.
        """
        now = from_ns(time.time_ns())
        info = Info(digest=str(digest), size=size, created_at=now, updated_at=now, labels=labels)
        linked = False
        with self._index.transaction():
            if self._index.get(namespace, info.digest) is not None:
                raise AlreadyExists(f"content {digest}")
            # Staged first: a failure to stage leaves no file behind.
            event = ContentCreate(digest=info.digest, size=size)
            row = self._index.stage(self._events, namespace, TOPIC_CREATE, event)
            target = self.path(digest)
            if not target.exists():
                # Another namespace may have committed these bytes: then keep its file.
                make_dirs(target.parent)
                os.link(data, target)
                fsync_dir(target.parent)
                linked = True
            self._index.insert(namespace, info)
        if linked:
            with contextlib.suppress(OSError):
                os.chmod(target, _READ_ONLY)
        return info, row

    def delete(self, namespace: str, digest: Digest) -> int:
        """Hide the blob from ``namespace``; remove its file once no namespace sees it.

        Returns:
            The outbox row of its ``/content/delete``.

        Raises:
            NotFound: if the namespace does not see it.
        """
        trashed: Path | None = None
        with self._index.transaction():
            if not self._index.remove(namespace, str(digest)):
                raise NotFound(f"content {digest}")
            event = ContentDelete(digest=str(digest))
            row = self._index.stage(self._events, namespace, TOPIC_DELETE, event)
            if not self._index.referenced(str(digest)):
                trashed = self._trash / f"{digest.algorithm}-{digest.encoded}-{uuid.uuid4().hex}"
                try:
                    os.rename(self.path(digest), trashed)
                except FileNotFoundError:
                    trashed = None
        if trashed is not None:
            trashed.unlink(missing_ok=True)
        return row

    def recover(self) -> None:
        """Bring the files back in line with the index after a crash."""
        with self._index.transaction():
            referenced = self._index.digests()
            self._recover_trash(referenced)
            self._remove_unreferenced(referenced)

    def _recover_trash(self, referenced: set[str]) -> None:
        for entry in self._trash.iterdir():
            algorithm, _, rest = entry.name.partition("-")
            digest = _digest_or_none(f"{algorithm}:{rest.partition('-')[0]}")
            if digest is not None and str(digest) in referenced and not self.path(digest).exists():
                make_dirs(self.path(digest).parent)
                os.rename(entry, self.path(digest))
            else:
                entry.unlink(missing_ok=True)

    def _remove_unreferenced(self, referenced: set[str]) -> None:
        for directory in self._blobs.iterdir():
            for entry in directory.iterdir():
                digest = _digest_or_none(f"{directory.name}:{entry.name}")
                # Only files that are ours by name: a crashed commit's link.
                if digest is not None and str(digest) not in referenced:
                    entry.unlink(missing_ok=True)


def database(root: Path) -> Path:
    """The SQLite file of the store at ``root``: its index, and its event outbox."""
    return root / "metadata.db"


def _digest_or_none(value: str) -> Digest | None:
    try:
        return digests.parse(value)
    except InvalidArgument:
        return None
