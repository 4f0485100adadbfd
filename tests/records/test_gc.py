"""The collector on real services: content, snapshots and images processes on one node.

Everything an image, a container, a live lease or a ``gc.root`` label reaches stays (through
indexes, manifests, ``gc.ref`` labels and snapshot parents); everything else goes, expired
leases included, snapshots children first; one namespace's records never keep another's
objects; records that change during the mark are marked again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flotilla.common import digests, errdefs
from flotilla.common.bus import Bus
from flotilla.content.helpers import write_blob
from flotilla.content.proxy import ContentProxy
from flotilla.images.gc.client import CollectorClient
from flotilla.images.gc.collector import GarbageCollector
from flotilla.images.gc.inventory import Snapshot
from flotilla.images.gc.lock import ClusterLock
from flotilla.images.gc.nodes import BusNode, BusNodes
from flotilla.images.holders import open_metadata
from flotilla.metadata import Container, Descriptor, Image, Metadata, Resource, Runtime
from flotilla.metadata.jetstream import open_bucket
from flotilla.metadata.records import AnyValue
from flotilla.snapshots.proxy import SnapshotterProxy
from flotilla.testkit.services import node_services

pytestmark = pytest.mark.root

NODE = "test-node"
NS = "gc"
OTHER = "gc.other"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SPEC = AnyValue(type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec", value=b"{}")


@pytest.fixture
async def services(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[None]:
    """Content, snapshots and images services on the bus's node."""
    debounce = {"FLOTILLA_IMAGES__GC_DEBOUNCE": "0.2"}
    names = ("content", "snapshots", "images")
    async with node_services(bus, nats_url, tmp_path / "root", names, debounce):
        yield


@pytest.fixture
async def metadata(services: None, bus: Bus) -> Metadata:
    return await Metadata.open(bus.nc, collector=CollectorClient(bus))


async def blob(bus: Bus, namespace: str, data: bytes, labels: dict[str, str] | None = None) -> str:
    digest = digests.digest_of(data)
    return await write_blob(ContentProxy(bus), namespace, f"gc-{digest}", data, digest, labels)


def desc(media_type: str, digest: str) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": 1}


async def snapshot_chain(bus: Bus, namespace: str, *names: str, **labels: str) -> None:
    """Committed snapshots ``names``, each on the one before."""
    snapshots = SnapshotterProxy(bus, "overlayfs", NODE)
    parent = ""
    for name in names:
        await snapshots.prepare(namespace, f"{name}-active", parent)
        await snapshots.commit(namespace, name, f"{name}-active", labels or None)
        parent = name


async def blobs_in(bus: Bus, namespace: str) -> set[str]:
    return {info.digest async for info in ContentProxy(bus).walk(namespace)}


async def snapshots_in(bus: Bus, namespace: str) -> set[str]:
    return {info.name async for info in SnapshotterProxy(bus, "overlayfs", NODE).walk(namespace)}


async def test_keeps_what_is_reached_and_removes_the_rest(metadata: Metadata, bus: Bus) -> None:
    layer1, layer2 = await blob(bus, NS, b"layer one"), await blob(bus, NS, b"layer two")
    await snapshot_chain(bus, NS, "chain1", "chain2")
    config = await blob(
        bus, NS, b'{"config": {}}', {"containerd.io/gc.ref.snapshot.overlayfs": "chain2"}
    )
    manifest = await blob(
        bus,
        NS,
        json.dumps(
            {"config": desc(CONFIG, config), "layers": [desc(LAYER, layer1), desc(LAYER, layer2)]}
        ).encode(),
    )
    index = await blob(bus, NS, json.dumps({"manifests": [desc(MANIFEST, manifest)]}).encode())
    await metadata.images.create(
        NS, Image(name="app:1", target=Descriptor(media_type=INDEX, digest=index))
    )

    referenced = await blob(bus, NS, b"referenced by a root's label")
    root = await blob(
        bus,
        NS,
        b"a root",
        {"containerd.io/gc.root": "yes", "containerd.io/gc.ref.content.x": referenced},
    )
    leased, lapsed = (
        await blob(bus, NS, b"held by a lease"),
        await blob(bus, NS, b"held by a lapsed lease"),
    )
    await metadata.leases.create(NS, "live")
    await metadata.leases.add_resource(NS, "live", Resource(id=leased, type="content"))
    await metadata.leases.add_resource(
        NS, "live", Resource(id="leased-snap", type="snapshots/overlayfs")
    )
    await snapshot_chain(bus, NS, "leased-snap")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await metadata.leases.create(NS, "lapsed", {"containerd.io/gc.expire": past})
    await metadata.leases.add_resource(NS, "lapsed", Resource(id=lapsed, type="content"))

    await snapshot_chain(bus, NS, "base")
    snapshots = SnapshotterProxy(bus, "overlayfs", NODE)
    await snapshots.prepare(NS, "rootfs-of-web", "base")
    await metadata.containers.create(
        NS,
        Container(
            id="web",
            runtime=Runtime(name="io.containerd.runc.v2"),
            spec=SPEC,
            snapshotter="overlayfs",
            snapshot_key="rootfs-of-web",
        ),
    )
    orphan = await blob(bus, NS, b"nobody wants me")
    await snapshot_chain(bus, NS, "orphan1", "orphan2", "orphan3")
    # The same bytes in another namespace are that namespace's: nothing there keeps them.
    await blob(bus, OTHER, b"layer one")
    await metadata.namespaces.ensure(OTHER)

    collected = await CollectorClient(bus).collection()

    kept = {layer1, layer2, config, manifest, index, referenced, root, leased}
    assert await blobs_in(bus, NS) == kept
    assert orphan not in kept
    assert lapsed not in kept
    assert await blobs_in(bus, OTHER) == set()
    assert await snapshots_in(bus, NS) == {
        "chain1",
        "chain2",
        "leased-snap",
        "base",
        "rootfs-of-web",
    }
    assert [lease.id async for lease in metadata.leases.list(NS)] == ["live"]
    assert (collected.blobs, collected.snapshots, collected.leases) == (3, 3, 1)

    # Deleting the image (sync: after a collection) frees what only it reached; the
    # container's snapshot keeps its parent.
    await metadata.images.delete(NS, "app:1", sync=True)
    assert await blobs_in(bus, NS) == {referenced, root, leased}
    assert await snapshots_in(bus, NS) == {"leased-snap", "base", "rootfs-of-web"}

    await metadata.containers.delete(NS, "web")
    await metadata.leases.delete(NS, "live", sync=True)
    assert await snapshots_in(bus, NS) == set()
    assert await blobs_in(bus, NS) == {referenced, root}


class ChangingNodes:
    """Nodes whose first snapshot listing lets ``change`` run: records change mid-mark."""

    def __init__(self, nodes: BusNodes, change: object) -> None:
        self.inner = nodes
        self.change = change

    async def nodes(self) -> Sequence[BusNode]:
        found = list(await self.inner.nodes())
        change = self.change

        class Changing(BusNode):
            async def snapshots(self, namespace: str) -> list[Snapshot]:
                nonlocal change
                if change is not None:
                    run, change = change, None
                    await run()  # type: ignore[operator]
                return await super().snapshots(namespace)

        return [
            Changing(
                node.bus, node.name, content=node.content is not None, snapshots=node.has_snapshots
            )
            for node in found
        ]


async def test_records_changing_during_the_mark_are_marked_again(
    metadata: Metadata, bus: Bus
) -> None:
    await metadata.namespaces.ensure(NS)
    late = await blob(bus, NS, b"an image will want me mid-mark")
    doomed = await blob(bus, NS, b"nobody wants me either")
    target = Descriptor(media_type=LAYER, digest=late)

    async def create_image() -> None:
        await metadata.images.create(NS, Image(name="late:1", target=target))

    locks = await open_bucket(bus.nc, "flotilla_locks")
    collector = GarbageCollector(
        metadata, ChangingNodes(BusNodes(bus), create_image), ClusterLock(locks, "gc")
    )
    collected = await collector.collection()

    assert collected.marks == 2
    assert await blobs_in(bus, NS) == {late}
    assert doomed not in await blobs_in(bus, NS)


async def test_one_collector_at_a_time(metadata: Metadata, bus: Bus) -> None:
    locks = await open_bucket(bus.nc, "flotilla_locks")
    first, second = ClusterLock(locks, "gc", ttl=3), ClusterLock(locks, "gc", ttl=3)
    async with first.hold():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5), second.hold():
                pass
    async with asyncio.timeout(5), second.hold() as held:
        assert not held.lost.is_set()


async def test_unknown_collector_is_unavailable(bus: Bus) -> None:
    with pytest.raises(errdefs.Unavailable):
        await CollectorClient(bus, timeout=2).collection()


async def test_namespaces_only_a_node_knows_are_collected(metadata: Metadata, bus: Bus) -> None:
    await blob(bus, "unrecorded", b"in a namespace no record names")
    await snapshot_chain(bus, "unrecorded", "lonely")

    collected = await CollectorClient(bus).collection()

    assert (collected.blobs, collected.snapshots) == (1, 1)
    assert await blobs_in(bus, "unrecorded") == set()
    assert await snapshots_in(bus, "unrecorded") == set()


async def test_a_namespace_is_deleted_once_no_node_holds_its_objects(
    services: None, bus: Bus
) -> None:
    metadata = await open_metadata(bus)
    await metadata.namespaces.create("busy")
    kept = await blob(bus, "busy", b"a root blob", {"containerd.io/gc.root": "yes"})
    await snapshot_chain(bus, "busy", "root-snap", **{"containerd.io/gc.root": "yes"})

    with pytest.raises(errdefs.FailedPrecondition, match="still has blobs, snapshots"):
        await metadata.namespaces.delete("busy")

    await ContentProxy(bus).delete("busy", kept)
    await SnapshotterProxy(bus, "overlayfs", NODE).remove("busy", "root-snap")
    await metadata.namespaces.delete("busy")
    assert "busy" not in [ns.name async for ns in metadata.namespaces.list()]


async def test_a_lease_protects_an_in_flight_pull(metadata: Metadata, bus: Bus) -> None:
    layer = b"a layer being pulled" * 1000
    digest = digests.digest_of(layer)
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await metadata.leases.create(NS, "pull", {"containerd.io/gc.expire": expires})
    # As a pull does: the digest is held before its bytes arrive.
    await metadata.leases.add_resource(NS, "pull", Resource(id=digest, type="content"))
    writer = await ContentProxy(bus).writer(NS, "pulling", len(layer), digest)
    async with writer:
        await writer.write(layer[:5000])
        await CollectorClient(bus).collection()  # mid-download
        await writer.write(layer[5000:])
        await writer.commit(len(layer), digest)
    await CollectorClient(bus).collection()  # committed, no image yet
    assert digest in await blobs_in(bus, NS)

    target = Descriptor(media_type=LAYER, digest=digest, size=len(layer))
    await metadata.images.create(NS, Image(name="pulled:1", target=target))
    await metadata.leases.delete(NS, "pull", sync=True)
    assert digest in await blobs_in(bus, NS)
