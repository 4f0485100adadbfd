"""The images service's NATS endpoints: decode, call the core, convert."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from flotilla.common.bus import Context, ServiceHost
from flotilla.images import api, oci, platforms, reference
from flotilla.images.gc.collector import GarbageCollector
from flotilla.images.platforms import Matcher
from flotilla.images.pull.node import NodeServices
from flotilla.images.pull.puller import Pulled, Puller, PullOptions, Remote
from flotilla.images.push.pusher import Pusher, PushOptions
from flotilla.images.push.upload import Target as PushTarget
from flotilla.images.reference import Reference
from flotilla.images.transfer import Transfers
from flotilla.metadata import Metadata

__all__ = ["ImagesService", "Registry", "Repository", "matchers"]


class Repository(Remote, PushTarget, Protocol):
    """One repository on a registry, to pull from and push to."""


class Registry(Protocol):
    """Opens repositories on registries."""

    def repository(
        self,
        ref: Reference,
        *,
        plain_http: bool = False,
        skip_verify: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> Repository:
        """The repository of ``ref`` on its registry's configured endpoints."""
        ...


def matchers(req: api.PullRequest | api.ImportRequest) -> Sequence[Matcher] | None:
    """The platforms a pull wants: every one, the named ones, or this node's."""
    if req.all_platforms:
        return None
    return wanted(req.platforms) or [platforms.only(platforms.default())]


def wanted(texts: Sequence[str]) -> list[Matcher] | None:
    """A matcher for each platform named (``linux/arm64``); ``None`` when none is."""
    return [platforms.only(platforms.parse(text)) for text in texts] or None


def _target(desc: oci.Described) -> api.Target:
    return api.Target(media_type=desc.media_type, digest=desc.digest, size=desc.size)


class ImagesService:
    """Serves pulls, pushes, imports and exports on this node, and the collector on demand."""

    def __init__(
        self,
        collector: GarbageCollector,
        puller: Puller,
        pusher: Pusher,
        registry: Registry,
        transfers: Transfers,
        metadata: Metadata,
        node: NodeServices,
        downloads: int,
    ) -> None:
        self.collector = collector
        self.puller = puller
        self.pusher = pusher
        self.registry = registry
        self.transfers = transfers
        self.metadata = metadata
        self.node = node
        self.downloads = downloads

    def register(self, host: ServiceHost) -> None:
        """Add every images endpoint to ``host``."""
        host.unary(api.GC, self.gc)
        host.unary(api.PULL, self.pull)
        host.unary(api.IMPORT, self.import_)
        host.unary(api.EXPORT, self.export)
        host.unary(api.PUSH, self.push)

    async def gc(self, req: api.Collect, _: Context) -> api.Collected:
        if not req.wait:
            self.collector.schedule()
            return api.Collected()
        collected = await self.collector.collection()
        return api.Collected(**dataclasses.asdict(collected))

    def _repository(self, ref: Reference, req: api.PullRequest | api.PushRequest) -> Repository:
        credentials = (req.username, req.secret) if req.username else None
        return self.registry.repository(
            ref, plain_http=req.plain_http, skip_verify=req.skip_verify, credentials=credentials
        )

    async def pull(self, req: api.PullRequest, ctx: Context) -> api.PullResult:
        namespace = ctx.namespace
        ref = reference.parse(req.reference)
        remote = self._repository(ref, req)
        options = PullOptions(
            matchers(req),
            unpack=await self.node.unpacker(req.snapshotter) if req.unpack else None,
            downloads=self.downloads,
            labels=req.labels,
        )
        async with self.node.reporting(req.progress) as tracker:
            pulled = await self.puller.pull(namespace, ref, remote, options, tracker)
        return _result(pulled)

    async def import_(self, req: api.ImportRequest, ctx: Context) -> api.ImportResult:
        options = PullOptions(
            matchers(req),
            unpack=await self.node.unpacker(req.snapshotter) if req.unpack else None,
            downloads=self.downloads,
            labels=req.labels,
        )
        images = await self.transfers.import_archive(
            ctx.namespace, Path(req.path), options, base_name=req.base_name
        )
        return api.ImportResult(images=tuple(_result(pulled) for pulled in images))

    async def export(self, req: api.ExportRequest, ctx: Context) -> api.Exported:
        size = await self.transfers.export_archive(
            ctx.namespace,
            Path(req.path),
            req.names,
            matchers=wanted(req.platforms),
            docker_manifest=req.docker_manifest,
        )
        return api.Exported(path=req.path, size=size)

    async def push(self, req: api.PushRequest, ctx: Context) -> api.Pushed:
        record = await self.metadata.images.get(ctx.namespace, req.name)
        ref = reference.parse(req.reference or req.name)
        target = oci.descriptor_of(record.target)
        options = PushOptions(
            matchers=wanted(req.platforms), chunk_size=req.chunk_size, uploads=self.downloads
        )
        async with self.node.reporting(req.progress) as tracker:
            pushed = await self.pusher.push(
                ctx.namespace,
                target,
                self._repository(ref, req),
                ref.tag,
                options,
                tracker,
                image=req.name,
            )
        return api.Pushed(
            reference=str(ref),
            target=_target(pushed),
        )


def _result(pulled: Pulled) -> api.PullResult:
    return api.PullResult(
        name=pulled.image.name,
        target=_target(pulled.image.target),
        chain_ids=pulled.chain_ids,
        created=pulled.created,
    )
