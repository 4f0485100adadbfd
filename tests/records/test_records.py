"""Namespaces, images, containers and leases through :class:`Metadata` on real JetStream."""

from __future__ import annotations

import pytest

from flotilla.common import errdefs
from flotilla.metadata import (
    AnyValue,
    Container,
    Descriptor,
    Image,
    Metadata,
    Resource,
    Runtime,
    events,
)
from flotilla.testkit.suite import BusEvents, expect_event

NS = "k8s.io"
DIGEST = "sha256:" + "a" * 64
TARGET = Descriptor(
    media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST, size=100
)
SPEC = AnyValue(type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec", value=b"{}")


def container(container_id: str, **labels: str) -> Container:
    return Container(
        id=container_id,
        runtime=Runtime(name="io.containerd.runc.v2"),
        spec=SPEC,
        image="docker.io/library/busybox:latest",
        snapshotter="overlayfs",
        snapshot_key=container_id,
        labels=labels,
    )


async def test_image_lifecycle(metadata: Metadata, seen: BusEvents) -> None:
    name = "docker.io/library/busybox:latest"
    created = await metadata.images.create(NS, Image(name=name, target=TARGET, labels={"a": "1"}))
    assert created.created_at is not None
    assert created.created_at == created.updated_at
    assert await metadata.images.get(NS, name) == created
    with pytest.raises(errdefs.AlreadyExists, match="busybox:latest"):
        await metadata.images.create(NS, Image(name=name, target=TARGET))
    updated = await metadata.images.update(
        NS, Image(name=name, target=TARGET, labels={"b": "2"}), ["labels.b"]
    )
    assert updated.labels == {"a": "1", "b": "2"}
    listed = [image.name async for image in metadata.images.list(NS, ["labels.b==2"])]
    assert listed == [name]
    assert [image async for image in metadata.images.list(NS, ["labels.b==3"])] == []
    await metadata.images.delete(NS, name)
    with pytest.raises(errdefs.NotFound, match=f'image "{name}" not found in namespace "{NS}"'):
        await metadata.images.get(NS, name)
    await expect_event(seen, NS, events.NAMESPACE_CREATE, events.NamespaceCreate(name=NS))
    await expect_event(
        seen, NS, events.IMAGE_CREATE, events.ImageCreate(name=name, labels={"a": "1"})
    )
    await expect_event(
        seen, NS, events.IMAGE_UPDATE, events.ImageUpdate(name=name, labels={"a": "1", "b": "2"})
    )
    await expect_event(seen, NS, events.IMAGE_DELETE, events.ImageDelete(name=name))


async def test_container_lifecycle(metadata: Metadata, seen: BusEvents) -> None:
    created = await metadata.containers.create(NS, container("web.1", app="web"))
    assert created.created_at is not None
    changed = await metadata.containers.update(
        NS, container("web.1", tier="front"), ["labels.tier", "snapshotkey"]
    )
    assert changed.labels == {"app": "web", "tier": "front"}
    with pytest.raises(errdefs.InvalidArgument, match="immutable"):
        await metadata.containers.update(
            NS, Container(id="web.1", runtime=Runtime(name="other"), spec=SPEC)
        )
    with pytest.raises(errdefs.InvalidArgument, match="cannot update"):
        await metadata.containers.update(NS, container("web.1"), ["runtime"])
    listed = [
        c.id async for c in metadata.containers.list(NS, ["runtime.name==io.containerd.runc.v2"])
    ]
    assert listed == ["web.1"]
    await metadata.containers.delete(NS, "web.1")
    with pytest.raises(errdefs.NotFound):
        await metadata.containers.delete(NS, "web.1")
    runtime = events.EventRuntime(name="io.containerd.runc.v2")
    create = events.ContainerCreate(id="web.1", image=created.image, runtime=runtime)
    await expect_event(seen, NS, events.CONTAINER_CREATE, create)
    update = events.ContainerUpdate(
        id="web.1", image=created.image, labels=changed.labels, snapshot_key="web.1"
    )
    await expect_event(seen, NS, events.CONTAINER_UPDATE, update)
    await expect_event(seen, NS, events.CONTAINER_DELETE, events.ContainerDelete(id="web.1"))


async def test_leases_and_resources(metadata: Metadata) -> None:
    await metadata.leases.create(NS, "pull-1", {"containerd.io/gc.expire": "2099-01-01T00:00:00Z"})
    await metadata.leases.add_resource(NS, "pull-1", Resource(id=DIGEST, type="content"))
    await metadata.leases.add_resource(NS, "pull-1", Resource(id=DIGEST, type="content"))
    await metadata.leases.add_resource(NS, "pull-1", Resource(id="a.b", type="snapshots/overlayfs"))
    held = await metadata.leases.resources(NS, "pull-1")
    assert sorted((r.type, r.id) for r in held) == [
        ("content", DIGEST),
        ("snapshots/overlayfs", "a.b"),
    ]
    with pytest.raises(errdefs.InvalidArgument, match="unsupported resource type"):
        await metadata.leases.add_resource(NS, "pull-1", Resource(id="x", type="bogus"))
    await metadata.leases.delete_resource(NS, "pull-1", Resource(id=DIGEST, type="content"))
    assert [r.type for r in await metadata.leases.resources(NS, "pull-1")] == [
        "snapshots/overlayfs"
    ]
    assert [lease.id async for lease in metadata.leases.list(NS)] == ["pull-1"]
    await metadata.leases.delete(NS, "pull-1")
    assert [lease.id async for lease in metadata.leases.list(NS)] == []
    with pytest.raises(errdefs.NotFound):
        await metadata.leases.resources(NS, "pull-1")


async def test_namespaces(metadata: Metadata, seen: BusEvents) -> None:
    await metadata.namespaces.create("team.a", {"owner": "x"})
    with pytest.raises(errdefs.AlreadyExists):
        await metadata.namespaces.create("team.a")
    for bad in ("", "-x", "a..b", "a/b", "x" * 77):
        with pytest.raises(errdefs.InvalidArgument):
            await metadata.namespaces.create(bad)
    updated = await metadata.namespaces.update("team.a", {"env": "dev"}, ["labels.env"])
    assert updated.labels == {"owner": "x", "env": "dev"}
    await metadata.containers.create("team.a", container("c1"))
    await metadata.leases.create("team.a", "l1")
    with pytest.raises(errdefs.FailedPrecondition, match="still has containers, leases"):
        await metadata.namespaces.delete("team.a")
    await metadata.containers.delete("team.a", "c1")
    await metadata.leases.delete("team.a", "l1")
    await metadata.namespaces.delete("team.a")
    assert "team.a" not in [ns.name async for ns in metadata.namespaces.list()]
    await expect_event(
        seen,
        "team.a",
        events.NAMESPACE_UPDATE,
        events.NamespaceUpdate(name="team.a", labels={"owner": "x", "env": "dev"}),
    )
    await expect_event(
        seen, "team.a", events.NAMESPACE_DELETE, events.NamespaceDelete(name="team.a")
    )
