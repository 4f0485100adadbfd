"""A node's content and snapshots services, the cluster records, a registry, and a puller.

The puller runs in the test's process, as the images service runs it: on the services' node
(the bus fixture's), so layer bytes go straight into the content ingest's file and the diff
service unpacks them from there as they arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flotilla.common.bus import Bus
from flotilla.images import reference
from flotilla.images.api import PullRequest
from flotilla.images.pull.node import NodeServices
from flotilla.images.pull.progress import BlobProgress, Tracker
from flotilla.images.pull.puller import Pulled, Puller, PullOptions
from flotilla.images.remotes.registry import Registries
from flotilla.images.service import matchers
from flotilla.metadata import Metadata
from flotilla.testkit import fixtures as kit
from flotilla.testkit.services import ServiceProcess

image_cache = kit.image_cache
images = kit.images
registry = kit.registry
published_images = kit.published_images
auth_registry = kit.auth_registry
token_registry = kit.token_registry
faulty = kit.faulty

NODE = "test-node"  # the bus fixture's node: the test is a caller on the services' node
NS = "pulls"


@pytest.fixture
async def node_root(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[Path]:
    """A content and a snapshots service on the test's node; their root."""
    root = tmp_path / "root"
    env = {
        "FLOTILLA_ROOT": str(root),
        "FLOTILLA_NATS__URLS": nats_url,
        "FLOTILLA_NODE_ID": NODE,
        "FLOTILLA_LOG_LEVEL": "warning",
    }
    content, snapshots = ServiceProcess("content", env), ServiceProcess("snapshots", env)
    await content.start(bus)
    await snapshots.start(bus)
    yield root
    await snapshots.stop()
    await content.stop()


@pytest.fixture
async def metadata(bus: Bus) -> Metadata:
    """The cluster records on the test's nats-server."""
    return await Metadata.open(bus.nc)


@pytest.fixture
async def registries() -> AsyncIterator[Registries]:
    """A registry client with no configuration."""
    client = Registries()
    yield client
    await client.close()


@dataclass
class PullKit:
    """Pulls as the images service does, recording every progress report."""

    node: NodeServices
    puller: Puller
    registries: Registries
    progress: list[BlobProgress] = field(default_factory=list)

    async def pull(
        self,
        ref: str,
        *,
        namespace: str = NS,
        unpack: bool = True,
        snapshotter: str = "",
        registries: Registries | None = None,
        **request: object,
    ) -> Pulled:
        req = PullRequest(reference=ref, **request)  # type: ignore[arg-type]
        parsed = reference.parse(ref)
        remote = (registries or self.registries).repository(parsed, plain_http=True)
        options = PullOptions(
            matchers(req), unpack=await self.node.unpacker(snapshotter) if unpack else None
        )
        tracker = Tracker(self.progress.append, interval=0)
        return await self.puller.pull(namespace, parsed, remote, options, tracker)


@pytest.fixture
async def pulls(
    node_root: Path, bus: Bus, metadata: Metadata, registries: Registries
) -> AsyncIterator[PullKit]:
    node = NodeServices(bus)
    yield PullKit(node, Puller(metadata, node.content), registries)
    await node.close()


Pull = Callable[..., Awaitable[Pulled]]
