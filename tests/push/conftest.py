"""A node's content and snapshots services, the cluster records, registries, a puller and a pusher.

Images are pulled into the node with the puller (as the images service does), pushed from its
content store with the pusher, and pulled back into another namespace to compare.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flotilla.common.bus import Bus
from flotilla.images import oci, reference
from flotilla.images.api import PullRequest
from flotilla.images.pull.node import NodeServices
from flotilla.images.pull.progress import BlobProgress, Tracker
from flotilla.images.pull.puller import Pulled, Puller, PullOptions
from flotilla.images.push import Pusher, PushOptions
from flotilla.images.remotes.registry import Registries
from flotilla.images.service import matchers
from flotilla.metadata import Metadata
from flotilla.testkit import fixtures as kit
from flotilla.testkit.registry import LocalRegistry, local_registry
from flotilla.testkit.services import ServiceProcess

image_cache = kit.image_cache
images = kit.images
registry = kit.registry
published_images = kit.published_images
auth_registry = kit.auth_registry
token_registry = kit.token_registry
faulty = kit.faulty

NODE = "test-node"  # the bus fixture's node: the test is a caller on the services' node
NS = "pushes"


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


@pytest.fixture
async def second_registry() -> AsyncIterator[LocalRegistry]:
    """Another empty registry, to push to from the first."""
    async with local_registry() as reg:
        yield reg


@dataclass
class PushKit:
    """Pulls and pushes as the images service does, recording every progress report."""

    node: NodeServices
    puller: Puller
    pusher: Pusher
    metadata: Metadata
    registries: Registries
    progress: list[BlobProgress] = field(default_factory=list)

    async def pull(
        self,
        ref: str,
        *,
        namespace: str = NS,
        unpack: bool = False,
        registries: Registries | None = None,
        **request: object,
    ) -> Pulled:
        req = PullRequest(reference=ref, **request)  # type: ignore[arg-type]
        parsed = reference.parse(ref)
        remote = (registries or self.registries).repository(parsed, plain_http=True)
        options = PullOptions(
            matchers(req), unpack=await self.node.unpacker("") if unpack else None
        )
        return await self.puller.pull(namespace, parsed, remote, options)

    async def push(
        self,
        image: str,
        to: str,
        *,
        namespace: str = NS,
        registries: Registries | None = None,
        platforms: tuple[str, ...] = (),
        **options: object,
    ) -> oci.Descriptor:
        """Push the namespace's image record ``image`` to reference ``to``."""
        record = await self.metadata.images.get(namespace, image)
        target = oci.Descriptor(
            media_type=record.target.media_type,
            digest=record.target.digest,
            size=record.target.size,
        )
        parsed = reference.parse(to)
        remote = (registries or self.registries).repository(parsed, plain_http=True)
        wanted = matchers(PullRequest(reference=to, platforms=platforms)) if platforms else None
        tracker = Tracker(self.progress.append, interval=0)
        opts = PushOptions(matchers=wanted, **options)  # type: ignore[arg-type]
        return await self.pusher.push(
            namespace, target, remote, parsed.tag, opts, tracker, image=image
        )


@pytest.fixture
async def pushes(
    node_root: Path, bus: Bus, metadata: Metadata, registries: Registries
) -> AsyncIterator[PushKit]:
    node = NodeServices(bus)
    yield PushKit(node, Puller(metadata, node.content), Pusher(node.content), metadata, registries)
    await node.close()
