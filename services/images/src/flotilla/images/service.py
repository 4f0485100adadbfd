"""The images service's NATS endpoints: decode, call the core, convert."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from flotilla.common.bus import Context, ServiceHost
from flotilla.images import api, platforms, reference
from flotilla.images.gc.collector import GarbageCollector
from flotilla.images.platforms import Matcher
from flotilla.images.pull.node import NodeServices
from flotilla.images.pull.progress import Tracker
from flotilla.images.pull.puller import Puller, PullOptions, Remote
from flotilla.images.reference import Reference

__all__ = ["ImagesService", "Registries", "Registry"]


class Registry(Protocol):
    """Opens repositories on registries."""

    def repository(
        self, ref: Reference, *, plain_http: bool = False, skip_verify: bool = False
    ) -> Remote:
        """The repository of ``ref`` on its registry's configured endpoints."""
        ...

    async def close(self) -> None:
        """Close its connections."""
        ...


Registries = Callable[[Mapping[str, tuple[str, str]] | None], Registry]
"""Makes a registry client; given credentials (host -> user and secret), one using them."""


def matchers(req: api.PullRequest) -> Sequence[Matcher] | None:
    """The platforms a pull wants: every one, the named ones, or this node's."""
    if req.all_platforms:
        return None
    wanted = [platforms.parse(text) for text in req.platforms] or [platforms.default()]
    return [platforms.only(platform) for platform in wanted]


class ImagesService:
    """Serves pulls into this node and the collector on demand."""

    def __init__(
        self,
        collector: GarbageCollector,
        puller: Puller,
        registries: Registries,
        node: NodeServices,
        downloads: int,
    ) -> None:
        self.collector = collector
        self.puller = puller
        self.registry = registries(None)
        self.registries = registries
        self.node = node
        self.downloads = downloads

    def register(self, host: ServiceHost) -> None:
        """Add every images endpoint to ``host``."""
        host.unary(api.GC, self.gc)
        host.unary(api.PULL, self.pull)

    async def gc(self, req: api.Collect, _: Context) -> api.Collected:
        if not req.wait:
            self.collector.schedule()
            return api.Collected()
        collected = await self.collector.collection()
        return api.Collected(**dataclasses.asdict(collected))

    async def pull(self, req: api.PullRequest, ctx: Context) -> api.PullResult:
        namespace = ctx.namespace
        ref = reference.parse(req.reference)
        if not req.username:
            return await self._pull(namespace, ref, req, self.registry)
        own = self.registries({ref.domain: (req.username, req.secret)})
        try:
            return await self._pull(namespace, ref, req, own)
        finally:
            await own.close()

    async def _pull(
        self, namespace: str, ref: Reference, req: api.PullRequest, registry: Registry
    ) -> api.PullResult:
        remote = registry.repository(ref, plain_http=req.plain_http, skip_verify=req.skip_verify)
        options = PullOptions(
            matchers(req),
            unpack=await self.node.unpacker(req.snapshotter) if req.unpack else None,
            downloads=self.downloads,
            labels=req.labels,
        )
        tracker = Tracker(self.node.progress(req.progress))
        pulled = await self.puller.pull(namespace, ref, remote, options, tracker)
        target = pulled.image.target
        return api.PullResult(
            name=pulled.image.name,
            target=api.Target(media_type=target.media_type, digest=target.digest, size=target.size),
            chain_ids=pulled.chain_ids,
            created=pulled.created,
        )
