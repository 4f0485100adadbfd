"""Updates along field masks as containerd applies them, and the errors for bad ones."""

from __future__ import annotations

import pytest

from flotilla.common import errdefs
from flotilla.metadata import AnyValue, Container, Descriptor, Image, Metadata, Runtime

NS = "masks"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FIRST = Descriptor(media_type=MANIFEST, digest="sha256:" + "1" * 64, annotations={"a": "1"})
SECOND = Descriptor(media_type=MANIFEST, digest="sha256:" + "2" * 64, annotations={"b": "2"})
SPEC = AnyValue(type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec", value=b"{}")
EXT = AnyValue(type_url="ext", value=b"x")


async def test_image_masks(metadata: Metadata) -> None:
    await metadata.images.create(NS, Image(name="i", target=FIRST, labels={"keep": "1"}))
    moved = await metadata.images.update(NS, Image(name="i", target=SECOND), ["target"])
    assert moved.target == SECOND
    assert moved.labels == {"keep": "1"}
    noted = await metadata.images.update(
        NS, Image(name="i", target=Descriptor(media_type="", digest="", annotations={"c": "3"})),
        ["annotations.c", "annotations.b"],
    )  # fmt: skip
    assert noted.target.annotations == {"c": "3"}
    replaced = await metadata.images.update(NS, Image(name="i", target=FIRST, labels={"n": "1"}))
    assert (replaced.target, replaced.labels) == (FIRST, {"n": "1"})
    assert replaced.created_at is not None
    assert replaced.updated_at is not None
    assert replaced.created_at < replaced.updated_at
    with pytest.raises(errdefs.InvalidArgument, match='cannot update "name"'):
        await metadata.images.update(NS, Image(name="i", target=FIRST), ["name"])
    with pytest.raises(errdefs.InvalidArgument, match="digest"):
        await metadata.images.update(
            NS, Image(name="i", target=Descriptor(media_type=MANIFEST, digest="nope")), ["target"]
        )
    with pytest.raises(errdefs.NotFound):
        await metadata.images.update(NS, Image(name="missing", target=FIRST))


async def test_image_validation(metadata: Metadata) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="name must not be empty"):
        await metadata.images.create(NS, Image(name="", target=FIRST))
    with pytest.raises(errdefs.InvalidArgument, match="media type"):
        await metadata.images.create(
            NS, Image(name="x", target=Descriptor(media_type="", digest=FIRST.digest))
        )
    with pytest.raises(errdefs.InvalidArgument, match="label"):
        await metadata.images.create(NS, Image(name="x", target=FIRST, labels={"k": "v" * 5000}))


async def test_container_masks(metadata: Metadata) -> None:
    base = Container(
        id="c", runtime=Runtime(name="rt"), spec=SPEC, snapshotter="overlayfs", snapshot_key="k",
        extensions={"one": EXT}, labels={"a": "1"},
    )  # fmt: skip
    await metadata.containers.create(NS, base)
    other = AnyValue(type_url="ext", value=b"y")
    changed = await metadata.containers.update(
        NS,
        Container(id="c", runtime=Runtime(name="rt"), extensions={"two": other}, image="img"),
        ["extensions.two", "extensions.one", "image"],
    )
    assert changed.extensions == {"two": other}
    assert changed.image == "img"
    assert changed.spec == SPEC
    full = await metadata.containers.update(
        NS,
        Container(id="c", runtime=Runtime(name="rt"), spec=SPEC, snapshotter="overlayfs"),
    )
    assert (full.labels, full.extensions, full.image, full.snapshot_key) == ({}, {}, "", "")
    with pytest.raises(errdefs.InvalidArgument, match="Spec must be set"):
        await metadata.containers.update(
            NS, Container(id="c", runtime=Runtime(name="rt")), ["spec"]
        )


async def test_container_validation(metadata: Metadata) -> None:
    with pytest.raises(errdefs.InvalidArgument, match=r"runtime\.Name"):
        await metadata.containers.create(NS, Container(id="c", runtime=Runtime(name=""), spec=SPEC))
    with pytest.raises(errdefs.InvalidArgument, match="Snapshotter must be set"):
        await metadata.containers.create(
            NS, Container(id="c", runtime=Runtime(name="rt"), spec=SPEC, snapshot_key="k")
        )
    with pytest.raises(errdefs.InvalidArgument, match="container id"):
        await metadata.containers.create(
            NS, Container(id="bad/id", runtime=Runtime(name="rt"), spec=SPEC)
        )


async def test_lease_filters_and_namespace_reads(metadata: Metadata) -> None:
    await metadata.leases.create(NS, "a", {"kind": "pull"})
    await metadata.leases.create(NS, "b", {"kind": "build"})
    assert [lease.id async for lease in metadata.leases.list(NS, ["labels.kind==pull"])] == ["a"]
    assert [lease.id async for lease in metadata.leases.list(NS, ["id~=^b$"])] == ["b"]
    with pytest.raises(errdefs.AlreadyExists):
        await metadata.leases.create(NS, "a")
    with pytest.raises(errdefs.InvalidArgument, match="lease id"):
        await metadata.leases.create(NS, "no spaces")
    assert (await metadata.namespaces.get(NS)).name == NS
    with pytest.raises(errdefs.NotFound, match='namespace "nowhere"'):
        await metadata.namespaces.get("nowhere")
    with pytest.raises(errdefs.InvalidArgument, match="cannot update"):
        await metadata.namespaces.update(NS, {}, ["name"])
