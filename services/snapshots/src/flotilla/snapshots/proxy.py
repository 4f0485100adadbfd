"""The snapshot and diff ports over the bus, against one node's snapshots service.

:class:`SnapshotterProxy` is a :class:`~flotilla.snapshots.snapshotter.Snapshotter` and
:class:`DiffProxy` an :class:`~flotilla.snapshots.diff.differ.Applier` and
:class:`~flotilla.snapshots.diff.differ.Comparer`. Mounts come back as the service's node sees
them: mount them on that node.

Deadlines: record look-ups (stat, update, mounts, namespaces) get the bus's usual 10 s; calls
that walk or copy a tree (prepare and view, which copy the parent in ``native``; commit, which
measures the layer; remove, usage, cleanup) get ``slow_timeout``; apply and diff, which move
whole layers, get the diff proxy's ``timeout``. The service stops working on a request once its
caller's deadline has passed. A unary call whose service dies before answering waits for its
deadline (NATS does not tell the caller); call again once the service is back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Final, TypeVar

from flotilla.common import errdefs
from flotilla.common.bus import DEFAULT_TIMEOUT, Bus, Empty, Unary
from flotilla.common.lifecycle import AsyncClosing
from flotilla.common.mounts import Mount
from flotilla.snapshots import api, convert
from flotilla.snapshots.diff.differ import LAYER_GZIP, Descriptor
from flotilla.snapshots.snapshotter import Info, Usage

__all__ = ["DIFF_TIMEOUT", "SLOW_TIMEOUT", "DiffProxy", "SnapshotterProxy", "loaded_snapshotters"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")

SLOW_TIMEOUT: Final = 600.0
"""Seconds a call that walks or copies a snapshot's tree may take."""
DIFF_TIMEOUT: Final = 3600.0
"""Seconds an apply or a diff may take (a layer of many GiB)."""


async def loaded_snapshotters(bus: Bus, node: str | None = None) -> api.Snapshotters:
    """What the snapshots service of ``node`` (default: the bus's) has loaded."""
    return await bus.call(api.SNAPSHOTTERS, Empty(), node=node)


class SnapshotterProxy(AsyncClosing):
    """One snapshotter of ``node``'s snapshots service, over the bus.

    Build it with :meth:`open`, which asks the service for the snapshotter's root and
    capabilities. Built directly, it knows neither: :attr:`root` raises FailedPrecondition
    and :attr:`can_rebase` is ``False``, so a caller never rebases on a guess.

    Args:
        bus: the connection to use.
        snapshotter: its name (empty: the node's default).
        node: whose snapshots service; default the bus's own node.
        loaded: what the service reported about it.
        timeout: the deadline of record look-ups.
        slow_timeout: the deadline of calls that walk or copy a tree.
    """

    def __init__(
        self,
        bus: Bus,
        snapshotter: str = "overlayfs",
        node: str | None = None,
        *,
        loaded: api.SnapshotterInfo | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        slow_timeout: float = SLOW_TIMEOUT,
    ) -> None:
        self.bus = bus
        self.node = node
        self.loaded = loaded
        self.timeout = timeout
        self.slow_timeout = slow_timeout
        self._name = snapshotter

    @classmethod
    async def open(
        cls,
        bus: Bus,
        snapshotter: str = "",
        node: str | None = None,
        *,
        slow_timeout: float = SLOW_TIMEOUT,
    ) -> SnapshotterProxy:
        """The proxy of ``snapshotter`` (empty: the node's default), as the service reports it.

        Raises:
            InvalidArgument: the node has not loaded it (``snapshotter not loaded: <name>``).
            Unavailable: no snapshots service answers for ``node``.
        """
        reply = await loaded_snapshotters(bus, node)
        name = snapshotter or reply.default
        found = next((s for s in reply.snapshotters if s.name == name), None)
        if found is None:
            raise errdefs.InvalidArgument(f"snapshotter not loaded: {name}")
        return cls(bus, found.name, node, loaded=found, slow_timeout=slow_timeout)

    @property
    def name(self) -> str:
        """The snapshotter's name (empty for the node's default, when built so)."""
        return self._name

    @property
    def root(self) -> Path:
        """Where its snapshots lie on the service's node, as the service reported it.

        Raises:
            FailedPrecondition: the proxy was not built by :meth:`open`.
        """
        if self.loaded is None:
            raise errdefs.FailedPrecondition(
                f"the root of snapshotter {self._name or '(default)'} is unknown: "
                "build the proxy with SnapshotterProxy.open"
            )
        return Path(self.loaded.root)

    @property
    def can_rebase(self) -> bool:
        """Whether the service reported the ``rebase`` capability (``False`` when unknown)."""
        return self.loaded is not None and api.CAPABILITY_REBASE in self.loaded.capabilities

    async def close(self) -> None:
        """Nothing to release: every call stands alone."""

    async def _call(
        self, method: Unary[Req, Resp], request: Req, namespace: str | None, *, slow: bool = False
    ) -> Resp:
        timeout = self.slow_timeout if slow else self.timeout
        return await self.bus.call(
            method, request, namespace=namespace, node=self.node, timeout=timeout
        )

    async def stat(self, namespace: str, key: str) -> Info:
        request = api.StatRequest(snapshotter=self._name, key=key)
        return convert.info(await self._call(api.STAT, request, namespace))

    async def update(self, namespace: str, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        request = api.UpdateRequest(
            snapshotter=self._name, info=convert.snapshot_info(info), fieldpaths=tuple(fieldpaths)
        )
        return convert.info(await self._call(api.UPDATE, request, namespace))

    async def usage(self, namespace: str, key: str) -> Usage:
        request = api.UsageRequest(snapshotter=self._name, key=key)
        return convert.usage(await self._call(api.USAGE, request, namespace, slow=True))

    async def mounts(self, namespace: str, key: str) -> list[Mount]:
        request = api.MountsRequest(snapshotter=self._name, key=key)
        return list((await self._call(api.MOUNTS, request, namespace)).mounts)

    async def prepare(
        self,
        namespace: str,
        key: str,
        parent: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> list[Mount]:
        request = api.PrepareRequest(
            snapshotter=self._name, key=key, parent=parent, labels=dict(labels or {})
        )
        return list((await self._call(api.PREPARE, request, namespace, slow=True)).mounts)

    async def view(
        self,
        namespace: str,
        key: str,
        parent: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> list[Mount]:
        request = api.ViewRequest(
            snapshotter=self._name, key=key, parent=parent, labels=dict(labels or {})
        )
        return list((await self._call(api.VIEW, request, namespace, slow=True)).mounts)

    async def commit(
        self,
        namespace: str,
        name: str,
        key: str,
        labels: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> None:
        request = api.CommitRequest(
            snapshotter=self._name,
            name=name,
            key=key,
            labels=None if labels is None else dict(labels),
            parent=parent,
        )
        await self._call(api.COMMIT, request, namespace, slow=True)

    async def remove(self, namespace: str, key: str) -> None:
        request = api.RemoveRequest(snapshotter=self._name, key=key)
        await self._call(api.REMOVE, request, namespace, slow=True)

    async def walk(self, namespace: str, filters: Sequence[str] = ()) -> AsyncIterator[Info]:
        request = api.ListRequest(snapshotter=self._name, filters=tuple(filters))
        items = self.bus.items(api.LIST, request, namespace=namespace, node=self.node)
        async with contextlib.aclosing(items) as found:
            async for info in found:
                yield convert.info(info)

    async def namespaces(self) -> list[str]:
        request = api.NamespacesRequest(snapshotter=self._name)
        return list((await self._call(api.NAMESPACES, request, None)).namespaces)

    async def cleanup(self) -> None:
        request = api.CleanupRequest(snapshotter=self._name)
        await self._call(api.CLEANUP, request, None, slow=True)


class DiffProxy:
    """The diff service of ``node`` (default: the bus's own), over the bus.

    The layers stay in that node's content store: only descriptors and mounts travel.

    Args:
        bus: the connection to use.
        node: whose snapshots service.
        timeout: the deadline of one apply or diff.
    """

    def __init__(self, bus: Bus, node: str | None = None, timeout: float = DIFF_TIMEOUT) -> None:
        self.bus = bus
        self.node = node
        self.timeout = timeout

    async def apply(
        self,
        namespace: str,
        layer: Descriptor,
        mounts: Sequence[Mount],
        *,
        diff_id: str = "",
        ref: str = "",
    ) -> Descriptor:
        request = api.ApplyRequest(
            diff=convert.wire_descriptor(layer), mounts=tuple(mounts), diff_id=diff_id, ref=ref
        )
        reply = await self.bus.call(
            api.APPLY, request, namespace=namespace, node=self.node, timeout=self.timeout
        )
        return convert.descriptor(reply.applied)

    async def compare(
        self,
        namespace: str,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str = LAYER_GZIP,
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        request = api.DiffRequest(
            left=tuple(lower),
            right=tuple(upper),
            media_type=media_type,
            ref=ref,
            labels=dict(labels or {}),
        )
        reply = await self.bus.call(
            api.DIFF, request, namespace=namespace, node=self.node, timeout=self.timeout
        )
        return convert.descriptor(reply.diff)
