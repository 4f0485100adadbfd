"""The snapshots service's NATS endpoints: decode, pick the snapshotter, call it, convert.

Also the node's diff endpoints (apply, diff), which work on the mounts those snapshotters
answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from flotilla.common import errdefs
from flotilla.common.bus import Context, Empty, ServiceHost
from flotilla.snapshots import api, convert
from flotilla.snapshots.diff.differ import LAYER_GZIP, Applier, Comparer
from flotilla.snapshots.snapshotter import Snapshotter

__all__ = ["SnapshotsService"]


class SnapshotsService:
    """Serves the node's snapshotters by name, its applier and its comparer.

    Args:
        snapshotters: the loaded snapshotters, by name.
        default: the one a request naming none is for.
        applier: unpacks layers onto mounts.
        comparer: computes layers from mounts.
    """

    def __init__(
        self,
        snapshotters: Mapping[str, Snapshotter],
        default: str,
        applier: Applier,
        comparer: Comparer,
    ) -> None:
        self.snapshotters = dict(snapshotters)
        self.default = default
        self.applier = applier
        self.comparer = comparer

    def register(self, host: ServiceHost) -> None:
        """Add every snapshots and diff endpoint to ``host``."""
        host.unary(api.PREPARE, self.prepare)
        host.unary(api.VIEW, self.view)
        host.unary(api.MOUNTS, self.mounts)
        host.unary(api.COMMIT, self.commit)
        host.unary(api.REMOVE, self.remove)
        host.unary(api.STAT, self.stat)
        host.unary(api.UPDATE, self.update)
        host.items(api.LIST, self.list)
        host.unary(api.USAGE, self.usage)
        host.unary(api.CLEANUP, self.cleanup)
        host.unary(api.NAMESPACES, self.namespaces)
        host.unary(api.SNAPSHOTTERS, self.loaded)
        host.unary(api.APPLY, self.apply)
        host.unary(api.DIFF, self.diff)

    def _pick(self, name: str) -> Snapshotter:
        found = self.snapshotters.get(name or self.default)
        if found is None:
            raise errdefs.InvalidArgument(f"snapshotter not loaded: {name}")
        return found

    async def prepare(self, req: api.PrepareRequest, ctx: Context) -> api.Mounts:
        snapshotter = self._pick(req.snapshotter)
        mounts = await snapshotter.prepare(ctx.namespace, req.key, req.parent, req.labels)
        return api.Mounts(mounts=tuple(mounts))

    async def view(self, req: api.ViewRequest, ctx: Context) -> api.Mounts:
        snapshotter = self._pick(req.snapshotter)
        mounts = await snapshotter.view(ctx.namespace, req.key, req.parent, req.labels)
        return api.Mounts(mounts=tuple(mounts))

    async def mounts(self, req: api.MountsRequest, ctx: Context) -> api.Mounts:
        mounts = await self._pick(req.snapshotter).mounts(ctx.namespace, req.key)
        return api.Mounts(mounts=tuple(mounts))

    async def commit(self, req: api.CommitRequest, ctx: Context) -> Empty:
        snapshotter = self._pick(req.snapshotter)
        await snapshotter.commit(ctx.namespace, req.name, req.key, req.labels, req.parent)
        return Empty()

    async def remove(self, req: api.RemoveRequest, ctx: Context) -> Empty:
        await self._pick(req.snapshotter).remove(ctx.namespace, req.key)
        return Empty()

    async def stat(self, req: api.StatRequest, ctx: Context) -> api.SnapshotInfo:
        found = await self._pick(req.snapshotter).stat(ctx.namespace, req.key)
        return convert.snapshot_info(found)

    async def update(self, req: api.UpdateRequest, ctx: Context) -> api.SnapshotInfo:
        snapshotter = self._pick(req.snapshotter)
        updated = await snapshotter.update(ctx.namespace, convert.info(req.info), req.fieldpaths)
        return convert.snapshot_info(updated)

    async def list(self, req: api.ListRequest, ctx: Context) -> AsyncIterator[api.SnapshotInfo]:
        async for found in self._pick(req.snapshotter).walk(ctx.namespace, req.filters):
            yield convert.snapshot_info(found)

    async def usage(self, req: api.UsageRequest, ctx: Context) -> api.Usage:
        used = await self._pick(req.snapshotter).usage(ctx.namespace, req.key)
        return convert.wire_usage(used)

    async def cleanup(self, req: api.CleanupRequest, _: Context) -> Empty:
        await self._pick(req.snapshotter).cleanup()
        return Empty()

    async def namespaces(self, req: api.NamespacesRequest, _: Context) -> api.Namespaces:
        found = await self._pick(req.snapshotter).namespaces()
        return api.Namespaces(namespaces=tuple(found))

    async def loaded(self, _: Empty, __: Context) -> api.Snapshotters:
        found = tuple(
            api.SnapshotterInfo(
                name=name,
                root=str(snapshotter.root),
                capabilities=(api.CAPABILITY_REBASE,) if snapshotter.can_rebase else (),
            )
            for name, snapshotter in self.snapshotters.items()
        )
        return api.Snapshotters(default=self.default, snapshotters=found)

    async def apply(self, req: api.ApplyRequest, ctx: Context) -> api.ApplyResponse:
        layer = convert.descriptor(req.diff)
        applied = await self.applier.apply(
            ctx.namespace, layer, req.mounts, diff_id=req.diff_id, ref=req.ref
        )
        return api.ApplyResponse(applied=convert.wire_descriptor(applied))

    async def diff(self, req: api.DiffRequest, ctx: Context) -> api.DiffResponse:
        layer = await self.comparer.compare(
            ctx.namespace,
            req.left,
            req.right,
            media_type=req.media_type or LAYER_GZIP,
            ref=req.ref,
            labels=req.labels,
        )
        return api.DiffResponse(diff=convert.wire_descriptor(layer))
