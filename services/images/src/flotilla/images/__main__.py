"""Composition root of the images service (``python -m flotilla.images``).

Adapters (the cluster records on JetStream, every node's content and snapshots services over
the bus, the collector's cluster lock in ``flotilla_locks``, the registry client), then the
core (the garbage collector, which the records' own deletes schedule, and the puller into this
node's content and snapshots), then the endpoints.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Final

from flotilla.common import runtime
from flotilla.common.bus import Bus, ServiceHost
from flotilla.common.config import Config
from flotilla.images import api
from flotilla.images.config import ImagesConfig
from flotilla.images.gc.collector import GarbageCollector
from flotilla.images.gc.lock import ClusterLock
from flotilla.images.gc.nodes import BusNodes
from flotilla.images.pull.node import NodeServices
from flotilla.images.pull.puller import Puller
from flotilla.images.push.pusher import Pusher
from flotilla.images.remotes.registry import Registries
from flotilla.images.service import ImagesService
from flotilla.images.transfer import Transfers
from flotilla.metadata import Metadata
from flotilla.metadata.jetstream import open_bucket

__all__ = ["build", "main"]

DESCRIPTION: Final = "cluster records' garbage collector; image pull, push, import and export"
LOCKS: Final = "flotilla_locks"
GC_LOCK: Final = "gc"


async def build(config: Config, bus: Bus, stack: AsyncExitStack) -> ServiceHost:
    """Wire the images service for ``config`` on ``bus``."""
    settings = config.section("images", ImagesConfig)
    metadata = await Metadata.open(bus.nc, replicas=settings.replicas)
    locks = await open_bucket(bus.nc, LOCKS, replicas=settings.replicas)
    lock = ClusterLock(locks, GC_LOCK, ttl=settings.gc_lock_ttl)
    collector = GarbageCollector(metadata, BusNodes(bus), lock, debounce=settings.gc_debounce)
    stack.push_async_callback(collector.close)
    node = NodeServices(bus)
    stack.push_async_callback(node.close)

    registry = Registries(
        hosts_dir=Path(settings.hosts_dir), docker_config=Path(settings.docker_config)
    )
    stack.push_async_callback(registry.close)
    puller = Puller(metadata, node.content)
    transfers = Transfers(metadata, node.content, puller)
    service = ImagesService(
        collector,
        puller,
        Pusher(node.content),
        registry,
        transfers,
        metadata,
        node,
        settings.downloads,
    )
    host = runtime.new_host(config, bus, api.API, DESCRIPTION)
    service.register(host)
    return host


def main() -> None:
    """Run the images service until SIGTERM."""
    runtime.main("images", build)


if __name__ == "__main__":
    main()
