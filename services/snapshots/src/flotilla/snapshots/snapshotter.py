"""The snapshotter's port, as containerd's ``core/snapshots``: file-system trees in layers.

Vocabulary and lifecycle:

- A snapshot is named by a **key**, unique within a namespace. :meth:`Snapshotter.prepare`
  makes an **active** snapshot on top of an optional committed **parent** (empty: an empty
  tree) and answers the :class:`~flotilla.common.mounts.Mount` records that show it writable;
  :meth:`Snapshotter.view` makes a read-only **view** the same way.
- :meth:`Snapshotter.commit` turns an active snapshot into a **committed** one under a new
  name (the active key is then gone); committed snapshots are the parents of others and are
  never mounted themselves. Committing a view is FailedPrecondition.
- :meth:`Snapshotter.remove` deletes a snapshot; one that is the parent of another is
  FailedPrecondition. :meth:`Snapshotter.cleanup` removes directories no record owns.

Every method but :meth:`Snapshotter.namespaces` and :meth:`Snapshotter.cleanup` takes the
namespace first: keys are per namespace, and a parent is looked up in the same namespace.
Errors are :mod:`flotilla.common.errdefs` classes: a missing key or parent is NotFound, a taken
key AlreadyExists.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from flotilla.common.filters import Adaptor
from flotilla.common.lifecycle import AsyncClosable
from flotilla.common.mounts import Mount
from flotilla.common.times import EPOCH

__all__ = ["Info", "Kind", "Snapshotter", "Usage", "adapt_info"]


class Kind(enum.Enum):
    """containerd's snapshot kinds (values as containerd spells them in filters and APIs)."""

    VIEW = "View"
    ACTIVE = "Active"
    COMMITTED = "Committed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Info:
    """One snapshot as its namespace sees it.

    Attributes:
        name: its key (active, view) or committed name.
        kind: view, active or committed.
        parent: the committed snapshot it is on top of; empty for none.
        labels: mutable metadata, including containerd's GC labels.
        created_at: when it was made (UTC).
        updated_at: when it last changed (labels, commit) (UTC).
    """

    name: str
    kind: Kind
    parent: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime = EPOCH
    updated_at: datetime = EPOCH


@dataclass(frozen=True, slots=True)
class Usage:
    """The disk a snapshot's own layer uses (not its parents').

    Attributes:
        size: bytes of the layer's files (as ``du`` counts them: blocks allocated).
        inodes: files, directories and links in the layer.
    """

    size: int = 0
    inodes: int = 0


class Snapshotter(AsyncClosable, Protocol):
    """containerd's ``snapshots.Snapshotter`` (with ``Cleaner``), per namespace."""

    @property
    def name(self) -> str:
        """The snapshotter's name as clients select it (``overlayfs``, ``native``)."""
        ...

    @property
    def root(self) -> Path:
        """The directory holding its snapshots on this node."""
        ...

    @property
    def can_rebase(self) -> bool:
        """Whether :meth:`commit` takes a ``parent`` (layers are independent directories).

        Then an image's layers can be prepared without parents, applied at the same time,
        and committed onto each other in order (containerd's ``rebase`` capability).
        """
        ...

    async def stat(self, namespace: str, key: str) -> Info:
        """The snapshot ``key``.

        Raises:
            NotFound: no snapshot ``key`` in the namespace.
        """
        ...

    async def update(self, namespace: str, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Change the labels of ``info.name`` along ``fieldpaths`` (``labels``, ``labels.<k>``).

        No field paths replaces every label. Returns the updated snapshot.

        Raises:
            NotFound: no such snapshot.
            InvalidArgument: a field path other than those, or an invalid label.
        """
        ...

    async def usage(self, namespace: str, key: str) -> Usage:
        """The size and inodes of ``key``'s own layer (an active one's as it is now)."""
        ...

    async def mounts(self, namespace: str, key: str) -> list[Mount]:
        """The mounts of the active snapshot or view ``key``.

        Raises:
            NotFound: no such snapshot.
            FailedPrecondition: ``key`` is committed (only active snapshots and views mount).
        """
        ...

    async def prepare(
        self,
        namespace: str,
        key: str,
        parent: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> list[Mount]:
        """Make the active snapshot ``key`` on top of the committed ``parent``; its mounts.

        Raises:
            AlreadyExists: ``key`` is taken in the namespace.
            NotFound: ``parent`` is not a snapshot of the namespace.
            InvalidArgument: ``parent`` is not committed (containerd's class for it).
        """
        ...

    async def view(
        self,
        namespace: str,
        key: str,
        parent: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> list[Mount]:
        """Make the read-only view ``key`` of the committed ``parent``; its mounts.

        Raises as :meth:`prepare` does.
        """
        ...

    async def commit(
        self,
        namespace: str,
        name: str,
        key: str,
        labels: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> None:
        """Turn the active snapshot ``key`` into the committed snapshot ``name``.

        Args:
            namespace: the namespace of both.
            name: the committed snapshot's name.
            key: the active snapshot to commit.
            labels: the committed snapshot's labels (none: the active one's).
            parent: rebase onto this committed snapshot (``None``: keep the parent it was
                prepared on); only where :attr:`can_rebase`, for a snapshot prepared without
                a parent.

        Raises:
            NotFound: no snapshot ``key``, or no ``parent``.
            AlreadyExists: ``name`` is taken.
            FailedPrecondition: ``key`` is a view or already committed; ``parent`` given
                where the snapshotter cannot rebase or ``key`` has a parent already.
        """
        ...

    async def remove(self, namespace: str, key: str) -> None:
        """Delete the snapshot ``key`` and its layer.

        Raises:
            NotFound: no such snapshot.
            FailedPrecondition: it is the parent of another snapshot.
        """
        ...

    def walk(self, namespace: str, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        """The namespace's snapshots matching any of containerd's ``filters`` (ORed)."""
        ...

    async def namespaces(self) -> list[str]:
        """The namespaces with at least one snapshot in this snapshotter, sorted.

        Whether or not the cluster has a record of them: this is what the node holds.
        """
        ...

    async def cleanup(self) -> None:
        """Remove the layer directories no snapshot record owns (a crash's leftovers)."""
        ...


def adapt_info(info: Info) -> Adaptor:
    """The filter adaptor for snapshots: ``name``, ``parent``, ``kind``, ``labels.<key>``."""

    def lookup(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if path[0] == "name":
            return info.name
        if path[0] == "parent":
            return info.parent
        if path[0] == "kind":
            return info.kind.value.lower()  # containerd's filters say active, view, committed
        if path[0] == "labels" and len(path) > 1:
            return info.labels.get(".".join(path[1:]))
        return None

    return lookup
