"""Pulls from registries that drop, corrupt, truncate, bloat, redirect and demand credentials.

Each bad answer is a clear error naming the blob, and leaves nothing visible: no image record,
no wrong blob, no lease. A dropped connection is resumed from the ingest's offset.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from tests.images.conftest import NODE, NS, ImagesKit

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.content.proxy import ContentProxy
from flotilla.images.remotes.registry import Registries
from flotilla.metadata import Metadata
from flotilla.testkit.faulty import FaultyRegistry
from flotilla.testkit.fixtures import AuthRegistry
from flotilla.testkit.layout import read_json
from flotilla.testkit.publish import PublishedImages

pytestmark = pytest.mark.root


def layers(published: PublishedImages, name: str) -> list[str]:
    image = getattr(published.images, name)
    manifest = read_json(image.layout, image.descriptor)
    return [layer["digest"] for layer in manifest["layers"]]


def through(faulty: FaultyRegistry, published: PublishedImages, name: str) -> str:
    return published.ref(name).replace(published.host, faulty.host)


async def nothing_left(metadata: Metadata, bus: Bus, ref: str, digest: str) -> None:
    with pytest.raises(errdefs.NotFound):
        await metadata.images.get(NS, ref)
    with pytest.raises(errdefs.NotFound):
        await ContentProxy(bus, node=NODE).info(NS, digest)
    assert [lease async for lease in metadata.leases.list(NS)] == []


async def test_a_dropped_connection_resumes_from_the_offset(
    pulls: ImagesKit, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    big = layers(published_images, "large")[2]
    faulty.drop_after(big, 100_000)
    await pulls.pull(through(faulty, published_images, "large"))
    ranges = faulty.ranges[big]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[1].startswith("bytes=")
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0


@pytest.mark.parametrize("fault", ["corrupt", "truncate"])
async def test_wrong_bytes_are_refused_and_nothing_stays(
    pulls: ImagesKit,
    published_images: PublishedImages,
    faulty: FaultyRegistry,
    metadata: Metadata,
    bus: Bus,
    fault: str,
) -> None:
    """A flipped byte fails the digest (the ingest is aborted); a short body every time fails
    the retries (the ingest is kept, to resume later, as containerd keeps it)."""
    layer = layers(published_images, "busybox")[0]
    if fault == "corrupt":
        faulty.corrupt(layer)
    else:
        faulty.truncate(layer, 1000)
    ref = through(faulty, published_images, "busybox")
    with pytest.raises(errdefs.ErrdefsError, match=layer):
        await pulls.pull(ref)
    await nothing_left(metadata, bus, ref, layer)
    if fault == "corrupt":
        assert await ContentProxy(bus, node=NODE).list_statuses(NS) == []


async def test_a_giant_manifest_is_refused(
    pulls: ImagesKit, published_images: PublishedImages, faulty: FaultyRegistry, metadata: Metadata
) -> None:
    faulty.giant_manifest("latest", 5 << 20)
    ref = through(faulty, published_images, "busybox")
    with pytest.raises(errdefs.InvalidArgument, match="4194304"):
        await pulls.pull(ref)
    with pytest.raises(errdefs.NotFound):
        await metadata.images.get(NS, ref)


async def test_credentials_never_follow_a_redirect(
    pulls: ImagesKit, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    faulty.require_basic("flotilla", "secret")
    faulty.redirect_blobs(True)
    own = Registries(credentials={faulty.host: ("flotilla", "secret")})
    try:
        await pulls.pull(through(faulty, published_images, "busybox"), registries=own)
    finally:
        await own.close()
    assert faulty.redirected_headers
    assert all("Authorization" not in headers for headers in faulty.redirected_headers)


async def test_without_credentials_an_auth_registry_refuses(
    pulls: ImagesKit, auth_registry: AuthRegistry
) -> None:
    with pytest.raises(errdefs.Unauthenticated):
        await pulls.pull(auth_registry.ref("busybox"))


async def pull_with(pulls: ImagesKit, registry: AuthRegistry) -> None:
    own = Registries(credentials={registry.host: registry.credentials})
    try:
        pulled = await pulls.pull(registry.ref("busybox"), registries=own)
    finally:
        await own.close()
    assert pulled.created


async def test_a_basic_auth_registry(pulls: ImagesKit, auth_registry: AuthRegistry) -> None:
    await pull_with(pulls, auth_registry)


async def test_a_token_registry(pulls: ImagesKit, token_registry: AuthRegistry) -> None:
    await pull_with(pulls, token_registry)
    assert token_registry.token_server is not None
    scopes = {scope for r in token_registry.token_server.requests for scope in r.scopes}
    assert "repository:busybox:pull" in scopes


async def test_concurrent_pulls_fetch_each_blob_once(
    pulls: ImagesKit, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    ref = through(faulty, published_images, "large")
    await asyncio.gather(pulls.pull(ref), pulls.pull(ref), pulls.pull(ref, namespace="other"))
    gets = Counter(
        (path, namespace)
        for method, path, _ in faulty.requests
        if method == "GET" and "/blobs/" in path
        for namespace in ["any"]
    )
    per_blob = Counter(path for (path, _) in gets.elements())
    for digest in layers(published_images, "large"):
        fetched = sum(count for path, count in per_blob.items() if path.endswith(digest))
        assert fetched == 2, digest  # once for each namespace, never twice for one
