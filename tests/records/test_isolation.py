"""Namespace isolation: what is made in one namespace is invisible and untouchable from another.

Every kind of record, every operation: the matrix is kinds x operations, each from the other
namespace, and the same names in both namespaces are two independent records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from flotilla.common import errdefs
from flotilla.metadata import AnyValue, Container, Descriptor, Image, Metadata, Resource, Runtime

OWNER, STRANGER = "tenant.a", "tenant.b"
DIGEST = "sha256:" + "b" * 64
TARGET = Descriptor(media_type="application/vnd.oci.image.manifest.v1+json", digest=DIGEST)
SPEC = AnyValue(type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec", value=b"{}")
NAME = "shared.name"  # dots: the same text in both namespaces' keys

Operation = Callable[[Metadata, str], Awaitable[object]]


def image(labels: dict[str, str] | None = None) -> Image:
    return Image(name=NAME, target=TARGET, labels=labels or {})


def container(labels: dict[str, str] | None = None) -> Container:
    return Container(
        id=NAME, runtime=Runtime(name="io.containerd.runc.v2"), spec=SPEC, labels=labels or {}
    )


async def _first(items: object) -> object:
    async for found in items:  # type: ignore[attr-defined]
        return found
    return None


OPERATIONS: dict[str, Operation] = {
    "image get": lambda m, ns: m.images.get(ns, NAME),
    "image update": lambda m, ns: m.images.update(ns, image({"x": "y"}), ["labels.x"]),
    "image delete": lambda m, ns: m.images.delete(ns, NAME),
    "container get": lambda m, ns: m.containers.get(ns, NAME),
    "container update": lambda m, ns: m.containers.update(ns, container({"x": "y"}), ["labels"]),
    "container delete": lambda m, ns: m.containers.delete(ns, NAME),
    "lease get": lambda m, ns: m.leases.get(ns, NAME),
    "lease delete": lambda m, ns: m.leases.delete(ns, NAME),
    "lease add resource": lambda m, ns: m.leases.add_resource(
        ns, NAME, Resource(id=DIGEST, type="content")
    ),
    "lease delete resource": lambda m, ns: m.leases.delete_resource(
        ns, NAME, Resource(id=DIGEST, type="content")
    ),
    "lease resources": lambda m, ns: m.leases.resources(ns, NAME),
}

LISTINGS: dict[str, Callable[[Metadata, str], object]] = {
    "images": lambda m, ns: m.images.list(ns),
    "containers": lambda m, ns: m.containers.list(ns),
    "leases": lambda m, ns: m.leases.list(ns),
}


async def _populate(metadata: Metadata) -> None:
    await metadata.images.create(OWNER, image({"owner": "a"}))
    await metadata.containers.create(OWNER, container({"owner": "a"}))
    await metadata.leases.create(OWNER, NAME, {"owner": "a"})
    await metadata.leases.add_resource(OWNER, NAME, Resource(id=DIGEST, type="content"))
    await metadata.namespaces.ensure(STRANGER)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_untouchable_from_another_namespace(metadata: Metadata, operation: str) -> None:
    await _populate(metadata)
    with pytest.raises(errdefs.NotFound, match=STRANGER):
        await OPERATIONS[operation](metadata, STRANGER)
    # ... and the owner's records are exactly as they were.
    assert (await metadata.images.get(OWNER, NAME)).labels == {"owner": "a"}
    assert (await metadata.containers.get(OWNER, NAME)).labels == {"owner": "a"}
    assert (await metadata.leases.get(OWNER, NAME)).labels == {"owner": "a"}
    assert len(await metadata.leases.resources(OWNER, NAME)) == 1


@pytest.mark.parametrize("listing", sorted(LISTINGS))
async def test_invisible_from_another_namespace(metadata: Metadata, listing: str) -> None:
    await _populate(metadata)
    assert await _first(LISTINGS[listing](metadata, STRANGER)) is None
    assert await _first(LISTINGS[listing](metadata, OWNER)) is not None


async def test_same_names_are_independent_records(metadata: Metadata) -> None:
    await _populate(metadata)
    await metadata.images.create(STRANGER, image({"owner": "b"}))
    await metadata.containers.create(STRANGER, container({"owner": "b"}))
    await metadata.images.delete(OWNER, NAME)
    await metadata.containers.delete(OWNER, NAME)
    assert (await metadata.images.get(STRANGER, NAME)).labels == {"owner": "b"}
    assert (await metadata.containers.get(STRANGER, NAME)).labels == {"owner": "b"}


async def test_names_that_would_break_a_subject_are_records_like_any(metadata: Metadata) -> None:
    names = ["a.b", "a*b", "a>b", "a b", "a=2Eb", "ünï/cødé:tag", "a.>"]
    for name in names:
        await metadata.images.create(OWNER, Image(name=name, target=TARGET))
    listed = sorted([found.name async for found in metadata.images.list(OWNER)])
    assert listed == sorted(names)
    assert (await metadata.images.get(OWNER, "a=2Eb")).name == "a=2Eb"


async def test_unknown_and_invalid_namespaces(metadata: Metadata) -> None:
    assert await _first(metadata.images.list("never.made")) is None
    with pytest.raises(errdefs.NotFound):
        await metadata.images.get("never.made", NAME)
    with pytest.raises(errdefs.InvalidArgument):
        await metadata.images.get("not a namespace", NAME)
    with pytest.raises(errdefs.InvalidArgument):
        await metadata.containers.create("a>b", container())
