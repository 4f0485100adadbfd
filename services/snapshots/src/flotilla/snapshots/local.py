"""``LocalSnapshotter``: a :class:`~flotilla.snapshots.snapshotter.Snapshotter` on this node.

Records live in the node's :class:`~flotilla.snapshots.metastore.MetaStore` (shared by every
snapshotter of the node, and its event outbox); each snapshot's directory is
``<root>/<id>`` (see :mod:`flotilla.snapshots.layout`).

Crash safety, in the order things happen:

- **Prepare/View**: the directory is made as ``<root>/new-<random>`` outside any transaction
  (a native copy may take a while); then one transaction records the snapshot, renames the
  directory to ``<root>/<id>`` and stages the event. A crash before the commit of that
  transaction leaves a directory no record owns, never a record without its directory.
- **Remove**: one transaction deletes the record, renames the directory to ``rm-<id>`` and
  stages the event; the directory is deleted after.
- **Cleanup** (and opening) removes every entry of the root no record owns: ``new-*`` and
  ``rm-*`` leftovers and directories of rolled-back records. Ids are never reused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

from flotilla.common import labels as label_rules
from flotilla.common import namespaces
from flotilla.common.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument
from flotilla.common.events import TransactionalPublisher
from flotilla.common.filters import parse_all
from flotilla.common.lifecycle import AsyncClosing
from flotilla.common.mounts import Mount
from flotilla.common.settle import run_settled
from flotilla.common.times import to_ns
from flotilla.snapshots import events
from flotilla.snapshots.layout import Layout, disk_usage, tree
from flotilla.snapshots.metastore import MetaStore, Record
from flotilla.snapshots.snapshotter import Info, Kind, Usage, adapt_info

__all__ = ["LocalSnapshotter", "NodeSnapshots"]

T = TypeVar("T")

_PAGE: Final = 256
_NEW: Final = "new-"
_REMOVED: Final = "rm-"


class NodeSnapshots(AsyncClosing):
    """The node's snapshot records, shared by its snapshotters: one database thread.

    Args:
        database: the SQLite file (``<state>/snapshots/metadata.db``).
        publisher: where the events are staged, in that database's transactions.
    """

    def __init__(self, database: Path, publisher: TransactionalPublisher) -> None:
        self.publisher = publisher
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snap-db")
        self._store: MetaStore | None = None
        self._database = database

    async def open(self) -> None:
        """Open (and create) the database."""
        await asyncio.to_thread(self._database.parent.mkdir, parents=True, exist_ok=True)
        self._store = await self.run(MetaStore, self._database)

    async def close(self) -> None:
        """Close the database."""
        if self._store is not None:
            await run_settled(self._executor, self._store.close)
            self._store = None
        self._executor.shutdown()

    @property
    def store(self) -> MetaStore:
        """The open database (only in :meth:`run`'s thread)."""
        assert self._store is not None, "NodeSnapshots is not open"
        return self._store

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` on the database thread, run to the end even if cancelled."""
        return await run_settled(self._executor, function, *args)


class LocalSnapshotter(AsyncClosing):
    """One snapshotter (a :class:`Layout`) over the node's records; see the module docstring.

    Args:
        node: the node's records.
        root: this snapshotter's directory (``<state>/snapshots/<name>``).
        layout: what fills and mounts a snapshot directory.
    """

    def __init__(self, node: NodeSnapshots, root: Path, layout: Layout) -> None:
        self._node = node
        self._root = root
        self._layout = layout
        self._in_flight: set[str] = set()

    @classmethod
    async def open(cls, node: NodeSnapshots, root: Path, layout: Layout) -> LocalSnapshotter:
        """The snapshotter, its root created and cleaned of what a crash left."""
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        snapshotter = cls(node, root, layout)
        await snapshotter.cleanup()
        return snapshotter

    @property
    def name(self) -> str:
        """The snapshotter's name (its layout's)."""
        return self._layout.name

    @property
    def root(self) -> Path:
        """The directory holding the snapshot directories."""
        return self._root

    @property
    def can_rebase(self) -> bool:
        """Whether commit may rebase (the layout's layers are independent)."""
        return self._layout.can_rebase

    async def close(self) -> None:
        """Nothing to release: the records belong to :class:`NodeSnapshots`."""

    async def stat(self, namespace: str, key: str) -> Info:
        """The snapshot ``key``."""
        return (await self._get(namespace, key)).info

    async def update(self, namespace: str, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Change the snapshot's labels along ``fieldpaths``."""
        namespace = namespaces.validate(namespace)
        for path in fieldpaths:
            if not label_rules.is_label_path(path):
                raise InvalidArgument(f"cannot update {path!r} field on snapshot {info.name}")
        return await self._node.run(self._update, namespace, info, tuple(fieldpaths))

    def _update(self, namespace: str, info: Info, fieldpaths: Sequence[str]) -> Info:
        store = self._node.store
        with store.transaction():
            record = store.get(self.name, namespace, info.name)
            labels = label_rules.updated(record.info.labels, info.labels, fieldpaths, "snapshot")
            store.set_labels(record.id, labels, to_ns(datetime.now(UTC)))
            return store.get(self.name, namespace, info.name).info

    async def usage(self, namespace: str, key: str) -> Usage:
        """Measured at commit for a committed snapshot, now for the others."""
        record = await self._get(namespace, key)
        if record.info.kind is Kind.COMMITTED:
            return record.usage
        return await asyncio.to_thread(disk_usage, tree(self._dir(record.id)))

    async def mounts(self, namespace: str, key: str) -> list[Mount]:
        """The mounts of an active snapshot or view."""
        record = await self._get(namespace, key)
        if record.info.kind is Kind.COMMITTED:
            raise FailedPrecondition(f"snapshot {key} is committed: only active and view mount")
        parents = await self._node.run(self._node_parent_ids, record.id)
        return self._layout.mounts(record.info.kind, self._dir(record.id), parents)

    def _node_parent_ids(self, ident: int) -> list[Path]:
        return [self._dir(parent) for parent in self._node.store.parent_ids(ident)]

    async def prepare(
        self,
        namespace: str,
        key: str,
        parent: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> list[Mount]:
        """Make the active snapshot ``key`` on ``parent``; its mounts."""
        return await self._create(namespace, key, parent, labels, Kind.ACTIVE)

    async def view(
        self,
        namespace: str,
        key: str,
        parent: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> list[Mount]:
        """Make the view ``key`` of ``parent``; its mounts."""
        return await self._create(namespace, key, parent, labels, Kind.VIEW)

    async def _create(
        self,
        namespace: str,
        key: str,
        parent: str,
        labels: Mapping[str, str] | None,
        kind: Kind,
    ) -> list[Mount]:
        namespace = namespaces.validate(namespace)
        if not key:
            raise InvalidArgument("snapshot key must not be empty")
        now = datetime.now(UTC)
        info = Info(
            name=key,
            kind=kind,
            parent=parent,
            labels=label_rules.validate(labels),
            created_at=now,
            updated_at=now,
        )
        parents = await self._node.run(self._check_new, namespace, key, parent)
        staging = self._root / f"{_NEW}{secrets.token_hex(8)}"
        self._in_flight.add(staging.name)
        try:
            await asyncio.to_thread(_populate, self._layout, staging, parents)
            ident, row = await self._node.run(self._record_new, namespace, info, staging)
        finally:
            self._in_flight.discard(staging.name)
            await asyncio.to_thread(_remove_tree, staging)
        if row:
            await self._node.publisher.committed(row)
        # A committed chain never changes, and recording re-checked that its head still exists.
        return self._layout.mounts(kind, self._dir(ident), parents)

    def _check_new(self, namespace: str, key: str, parent: str) -> list[Path]:
        """The parent chain's directories; fails early on a taken key or a bad parent."""
        store = self._node.store
        found = store.committed_parent(self.name, namespace, parent)
        if store.find(self.name, namespace, key) is not None:
            raise AlreadyExists(f"snapshot {key} already exists")
        if found is None:
            return []
        return [self._dir(found.id), *self._node_parent_ids(found.id)]

    def _record_new(self, namespace: str, info: Info, staging: Path) -> tuple[int, int]:
        """Record the snapshot, move its directory in place, stage its event: (id, row)."""
        store = self._node.store
        with store.transaction():
            found = store.committed_parent(self.name, namespace, info.parent)
            ident = store.insert(self.name, namespace, info, found.id if found else None)
            target = self._dir(ident)
            _remove_tree(target)  # a leftover of a crash that ran ahead of cleanup
            staging.rename(target)
            if info.kind is Kind.ACTIVE:
                event = events.SnapshotPrepare(
                    key=info.name, parent=info.parent, snapshotter=self.name
                )
                row = store.stage(self._node.publisher, namespace, events.TOPIC_PREPARE, event)
            else:
                row = 0  # containerd publishes no event for a view
        return ident, row

    async def commit(
        self,
        namespace: str,
        name: str,
        key: str,
        labels: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> None:
        """Turn the active ``key`` into the committed ``name`` (rebased onto ``parent``)."""
        namespace = namespaces.validate(namespace)
        if not name:
            raise InvalidArgument("committed snapshot name must not be empty")
        record = await self._get(namespace, key)
        _check_committable(record, key)
        if parent is not None and not self.can_rebase:
            raise FailedPrecondition(f"the {self.name} snapshotter cannot rebase {key}")
        if parent and record.info.parent:
            raise FailedPrecondition(f"snapshot {key} already has parent {record.info.parent}")
        usage = await asyncio.to_thread(disk_usage, tree(self._dir(record.id)))
        now = datetime.now(UTC)
        kept = record.info.labels if labels is None else label_rules.validate(labels)
        info = Info(name=name, kind=Kind.COMMITTED, labels=kept, updated_at=now)
        row = await self._node.run(self._record_commit, namespace, key, info, usage, parent)
        await self._node.publisher.committed(row)

    def _record_commit(
        self, namespace: str, key: str, info: Info, usage: Usage, parent: str | None
    ) -> int:
        store = self._node.store
        with store.transaction():
            record = store.get(self.name, namespace, key)
            _check_committable(record, key)
            if store.find(self.name, namespace, info.name) is not None:
                raise AlreadyExists(f"snapshot {info.name} already exists")
            rebased = store.committed_parent(self.name, namespace, parent) if parent else None
            store.commit(record.id, info, usage, rebased.id if rebased else None)
            event = events.SnapshotCommit(key=key, name=info.name, snapshotter=self.name)
            return store.stage(self._node.publisher, namespace, events.TOPIC_COMMIT, event)

    async def remove(self, namespace: str, key: str) -> None:
        """Forget the snapshot, then delete its directory."""
        namespace = namespaces.validate(namespace)
        row, doomed = await self._node.run(self._record_remove, namespace, key)
        await asyncio.to_thread(_remove_tree, doomed)
        await self._node.publisher.committed(row)

    def _record_remove(self, namespace: str, key: str) -> tuple[int, Path]:
        store = self._node.store
        with store.transaction():
            record = store.get(self.name, namespace, key)
            if store.children(record.id):
                raise FailedPrecondition(f"cannot remove snapshot {key} with child")
            store.delete(record.id)
            doomed = self._root / f"{_REMOVED}{record.id}"
            if self._dir(record.id).exists():
                self._dir(record.id).rename(doomed)
            event = events.SnapshotRemove(key=key, snapshotter=self.name)
            return store.stage(self._node.publisher, namespace, events.TOPIC_REMOVE, event), doomed

    async def walk(self, namespace: str, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        """The namespace's snapshots matching ``filters``, by key, a page at a time."""
        namespace, matcher = namespaces.validate(namespace), parse_all(filters)
        after = ""
        while True:
            page = await self._node.run(self._node_page, namespace, after)
            for record in page:
                if matcher.match(adapt_info(record.info)):
                    yield record.info
            if len(page) < _PAGE:
                return
            after = page[-1].info.name

    def _node_page(self, namespace: str, after: str) -> list[Record]:
        return self._node.store.page(self.name, namespace, after, _PAGE)

    async def namespaces(self) -> list[str]:
        """The namespaces with a snapshot of this snapshotter, sorted."""
        return await self._node.run(self._node.store.namespaces, self.name)

    async def cleanup(self) -> None:
        """Remove the root's entries no record owns (and no prepare in progress)."""
        owned = {str(ident) for ident in await self._node.run(self._node.store.ids, self.name)}
        doomed = [
            entry
            for entry in await asyncio.to_thread(lambda: list(self._root.iterdir()))
            if entry.name not in owned and entry.name not in self._in_flight
        ]
        for entry in doomed:
            await asyncio.to_thread(_remove_tree, entry)

    async def _get(self, namespace: str, key: str) -> Record:
        namespace = namespaces.validate(namespace)
        return await self._node.run(self._node.store.get, self.name, namespace, key)

    def _dir(self, ident: int) -> Path:
        return self._root / str(ident)


def _check_committable(record: Record, key: str) -> None:
    if record.info.kind is Kind.VIEW:
        raise FailedPrecondition(f"snapshot {key} is a view: views cannot be committed")
    if record.info.kind is Kind.COMMITTED:
        raise FailedPrecondition(f"snapshot {key} is already committed")


def _populate(layout: Layout, staging: Path, parents: Sequence[Path]) -> None:
    staging.mkdir(mode=0o700)
    layout.populate(staging, parents)


def _remove_tree(path: Path) -> None:
    """Remove ``path`` (a directory tree or a file) if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=False)
    elif path.exists() or path.is_symlink():
        path.unlink()
