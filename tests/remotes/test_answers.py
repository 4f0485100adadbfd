"""Registries that answer otherwise: no digest header, no HEAD, errors and retries, mirrors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common.errdefs import NotFound, PermissionDenied, Unavailable
from flotilla.images import oci
from flotilla.images.reference import parse
from flotilla.images.remotes import Registries
from flotilla.testkit.publish import PublishedImages
from flotilla.testkit.registry import LocalRegistry

from .meddler import Meddler, meddler


@pytest.fixture
async def proxy(registry: LocalRegistry) -> AsyncIterator[Meddler]:
    async with meddler(registry.url) as m:
        yield m


def expected(published: PublishedImages) -> oci.Descriptor:
    d = published.images.busybox.descriptor
    return oci.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size)


async def test_no_digest_header_resolves_by_get(
    registries: Registries, published_images: PublishedImages, proxy: Meddler
) -> None:
    proxy.strip_digest = True
    r = registries.repository(parse(f"{proxy.host}/busybox"))
    assert await r.resolve("latest") == expected(published_images)
    assert [m for m, p in proxy.seen if "/manifests/" in p] == ["HEAD", "GET"]


async def test_no_head_resolves_by_get(
    registries: Registries, published_images: PublishedImages, proxy: Meddler
) -> None:
    proxy.no_head = True
    r = registries.repository(parse(f"{proxy.host}/busybox"))
    assert await r.resolve("latest") == expected(published_images)
    assert await r.resolve(expected(published_images).digest) == expected(published_images)


async def test_transient_errors_retried_once(
    registries: Registries, published_images: PublishedImages, proxy: Meddler
) -> None:
    r = registries.repository(parse(f"{proxy.host}/busybox"))
    proxy.failures = [503]
    assert await r.resolve("latest") == expected(published_images)
    proxy.failures = [429, 429]
    with pytest.raises(Unavailable, match=rf"^registry {proxy.host}: .*too many requests"):
        await r.resolve("latest")
    proxy.failures = [403]
    with pytest.raises(PermissionDenied, match="access denied"):
        await r.resolve("latest")


async def test_mirror_errors_fall_through_to_the_registry(
    published_images: PublishedImages, proxy: Meddler, tmp_path: Path
) -> None:
    host = published_images.host
    directory = tmp_path / host
    directory.mkdir()
    (directory / "hosts.toml").write_text(
        f'server = "http://{host}"\n[host."http://{proxy.host}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    client = Registries(hosts_dir=tmp_path)
    try:
        r = client.repository(parse(f"{host}/busybox"))
        proxy.failures = [500, 500, 500, 500]  # a mirror is not retried: the registry is next
        assert await r.resolve("latest") == expected(published_images)
        assert len(proxy.seen) == 1
        # Not found anywhere: the registry's own answer, not the mirror's.
        with pytest.raises(NotFound, match=rf"^registry {host}: manifest busybox:nope not found"):
            await r.resolve("nope")
    finally:
        await client.close()
