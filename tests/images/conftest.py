"""A node's content and snapshots services, the cluster records, registries, a puller, a pusher.

The puller and the pusher run in the test's process, as the images service runs them: on the
services' node (the bus fixture's), so layer bytes go straight into the content ingest's file
and the diff service unpacks them from there as they arrive.
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
from flotilla.testkit.services import node_services

image_cache = kit.image_cache
images = kit.images
registry = kit.registry
published_images = kit.published_images
auth_registry = kit.auth_registry
token_registry = kit.token_registry
faulty = kit.faulty

NODE = "test-node"  # the bus fixture's node: the test is a caller on the services' node
NS = "images"


@pytest.fixture
async def node_root(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[Path]:
    """A content and a snapshots service on the test's node; their root."""
    root = tmp_path / "root"
    async with node_services(bus, nats_url, root, ("content", "snapshots")):
        yield root


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
class ImagesKit:
    """Pulls and pushes as the images service does, recording every progress report."""

    node: NodeServices
    puller: Puller
    pusher: Pusher
    metadata: Metadata
    registries: Registries
    unpack_by_default: bool = True
    progress: list[BlobProgress] = field(default_factory=list)

    async def pull(
        self,
        ref: str,
        *,
        namespace: str = NS,
        unpack: bool | None = None,
        snapshotter: str = "",
        registries: Registries | None = None,
        **request: object,
    ) -> Pulled:
        """Pull ``ref`` over plain HTTP (``request``: more :class:`PullRequest` fields)."""
        req = PullRequest(reference=ref, **request)  # type: ignore[arg-type]
        parsed = reference.parse(ref)
        remote = (registries or self.registries).repository(parsed, plain_http=True)
        unpacking = self.unpack_by_default if unpack is None else unpack
        options = PullOptions(
            matchers(req), unpack=await self.node.unpacker(snapshotter) if unpacking else None
        )
        tracker = Tracker(self.progress.append, interval=0)
        return await self.puller.pull(namespace, parsed, remote, options, tracker)

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
        target = oci.descriptor_of(record.target)
        parsed = reference.parse(to)
        remote = (registries or self.registries).repository(parsed, plain_http=True)
        wanted = matchers(PullRequest(reference=to, platforms=platforms)) if platforms else None
        tracker = Tracker(self.progress.append, interval=0)
        opts = PushOptions(matchers=wanted, **options)  # type: ignore[arg-type]
        return await self.pusher.push(
            namespace, target, remote, parsed.tag, opts, tracker, image=image
        )


async def _kit(
    bus: Bus, metadata: Metadata, registries: Registries, unpack_by_default: bool
) -> AsyncIterator[ImagesKit]:
    node = NodeServices(bus)
    puller, pusher = Puller(metadata, node.content), Pusher(node.content)
    yield ImagesKit(node, puller, pusher, metadata, registries, unpack_by_default)
    await node.close()


@pytest.fixture
async def pulls(
    node_root: Path, bus: Bus, metadata: Metadata, registries: Registries
) -> AsyncIterator[ImagesKit]:
    """Pulls (unpacked unless told otherwise) into the test node's services."""
    async for made in _kit(bus, metadata, registries, True):
        yield made


@pytest.fixture
async def pushes(
    node_root: Path, bus: Bus, metadata: Metadata, registries: Registries
) -> AsyncIterator[ImagesKit]:
    """Pulls (not unpacked unless told) and pushes from the test node's content store."""
    async for made in _kit(bus, metadata, registries, False):
        yield made
