"""Broken connections, short bodies, redirects to another host and mirrors, on real registries."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.common.errdefs import Unavailable
from flotilla.images import oci
from flotilla.images.reference import parse
from flotilla.images.remotes import Registries, Repository
from flotilla.testkit._proc import free_port
from flotilla.testkit.faulty import FaultyRegistry
from flotilla.testkit.publish import PublishedImages


async def biggest_layer(r: Repository) -> oci.Descriptor:
    desc = await r.resolve("latest")
    manifest = oci.decode_manifest(await r.fetch_document(desc), desc)
    return max(manifest.layers, key=lambda d: d.size)


def layer_bytes(published: PublishedImages, digest: str) -> bytes:
    layout = published.images.large.layout
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


async def test_resume_after_dropped_connection(
    registries: Registries, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    r = registries.repository(parse(f"{faulty.host}/large"))
    layer = await biggest_layer(r)
    faulty.drop_after(layer.digest, 100_000)
    received = bytearray()
    with pytest.raises(Unavailable, match=rf"connection lost after \d+ of {layer.size} bytes"):
        async with r.fetch(layer) as chunks:
            async for chunk in chunks:
                received += chunk
    resumed_at = len(received)
    assert 0 < resumed_at <= 100_000
    async with r.fetch(layer, resumed_at) as chunks:
        async for chunk in chunks:
            received += chunk
    assert bytes(received) == layer_bytes(published_images, layer.digest)
    assert faulty.ranges[layer.digest] == [None, f"bytes={resumed_at}-"]


async def test_truncated_body_is_unavailable(
    registries: Registries, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    r = registries.repository(parse(f"{faulty.host}/large"))
    layer = await biggest_layer(r)
    faulty.truncate(layer.digest, 5000)
    with pytest.raises(Unavailable, match=f"blob large@{layer.digest}"):
        async with r.fetch(layer) as chunks:
            async for _ in chunks:
                pass


async def test_redirect_to_blob_host_carries_no_credentials(
    published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    faulty.require_basic("u", "p")
    faulty.redirect_blobs(True)
    client = Registries(credentials={faulty.host: ("u", "p")})
    try:
        r = client.repository(parse(f"{faulty.host}/large"))
        layer = await biggest_layer(r)
        async with r.fetch(layer) as chunks:
            data = b"".join([c async for c in chunks])
    finally:
        await client.close()
    assert data == layer_bytes(published_images, layer.digest)
    assert faulty.redirected_headers  # the config and the layer came from the blob host
    assert all("Authorization" not in h for h in faulty.redirected_headers)
    assert any("Authorization" in seen.headers for seen in faulty.requests)


async def test_dead_mirror_falls_back_to_server(
    registries: Registries, published_images: PublishedImages, tmp_path: Path
) -> None:
    host = published_images.host
    dead = f"127.0.0.1:{free_port()}"
    hosts_dir = tmp_path / "certs.d"
    (hosts_dir / host).mkdir(parents=True)
    (hosts_dir / host / "hosts.toml").write_text(
        f'server = "http://{host}"\n\n[host."http://{dead}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    client = Registries(hosts_dir=hosts_dir)
    try:
        r = client.repository(parse(f"{host}/busybox"))
        assert [e.host for e in r.endpoints] == [dead, host]
        desc = await r.resolve("latest")
        assert desc.digest == published_images.images.busybox.digest
        assert await r.fetch_document(desc)
    finally:
        await client.close()


async def test_mirror_first(
    registries: Registries,
    published_images: PublishedImages,
    faulty: FaultyRegistry,
    tmp_path: Path,
) -> None:
    host = published_images.host
    hosts_dir = tmp_path / "certs.d"
    (hosts_dir / host).mkdir(parents=True)
    (hosts_dir / host / "hosts.toml").write_text(
        f'server = "http://{host}"\n\n[host."http://{faulty.host}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    client = Registries(hosts_dir=hosts_dir)
    try:
        r = client.repository(parse(f"{host}/busybox"))
        desc = await r.resolve("latest")
        assert await r.fetch_document(desc)
    finally:
        await client.close()
    paths = [seen.path for seen in faulty.requests]
    assert paths == [
        f"/v2/busybox/manifests/latest?ns={host}",
        f"/v2/busybox/manifests/{desc.digest}?ns={host}",
    ]
