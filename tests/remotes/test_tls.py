"""hosts.toml settings on real connections: CAs, client certificates, skip_verify, headers."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common.errdefs import NotFound, Unavailable
from flotilla.images import oci
from flotilla.images.reference import parse
from flotilla.images.remotes import Registries
from flotilla.testkit.faulty import FaultyRegistry
from flotilla.testkit.publish import ImageSet, PublishedImages, push_image

from .tls_registry import TLSRegistry, tls_registry


@pytest.fixture
async def tls(images: ImageSet) -> AsyncIterator[TLSRegistry]:
    async with tls_registry() as reg:
        await push_image(images.busybox, reg.host)
        yield reg


def hosts_toml(root: Path, host: str, text: str, *files: Path) -> Path:
    directory = root / "certs.d" / host
    directory.mkdir(parents=True)
    (directory / "hosts.toml").write_text(text)
    for f in files:
        shutil.copy(f, directory / f.name)
    return root / "certs.d"


async def pull(client: Registries, ref: str) -> oci.Descriptor:
    try:
        r = client.repository(parse(ref))
        desc = await r.resolve("latest")
        manifest = oci.decode_manifest(await r.fetch_document(desc), desc)
        await r.fetch_document(manifest.config)
        return desc
    finally:
        await client.close()


async def test_ca_from_hosts_toml(tls: TLSRegistry, images: ImageSet, tmp_path: Path) -> None:
    text = f'server = "https://{tls.host}"\nca = "ca.pem"\n'
    client = Registries(hosts_dir=hosts_toml(tmp_path, tls.host, text, tls.ca))
    assert (await pull(client, f"{tls.host}/busybox")).digest == images.busybox.digest


async def test_unknown_ca_refused_unless_skip_verify(tls: TLSRegistry, tmp_path: Path) -> None:
    text = f'server = "https://{tls.host}"\n'
    client = Registries(hosts_dir=hosts_toml(tmp_path / "a", tls.host, text))
    with pytest.raises(Unavailable, match=rf"^registry {tls.host}: manifest busybox:latest: "):
        await pull(client, f"{tls.host}/busybox")
    text += "skip_verify = true\n"
    client = Registries(hosts_dir=hosts_toml(tmp_path / "b", tls.host, text))
    assert await pull(client, f"{tls.host}/busybox")
    # A local registry without configuration: TLS without verification, as containerd does.
    assert await pull(Registries(), f"{tls.host}/busybox")


async def test_client_certificate(tmp_path: Path) -> None:
    async with tls_registry(client_certs=True) as reg:
        assert reg.client_cert is not None
        text = f'server = "https://{reg.host}"\nca = "ca.pem"\nclient = "client.pem"\n'
        certs = hosts_toml(tmp_path / "a", reg.host, text, reg.ca, reg.client_cert)
        client = Registries(hosts_dir=certs)
        with pytest.raises(NotFound, match="manifest nothing:latest not found"):
            await pull(client, f"{reg.host}/nothing")
        text = f'server = "https://{reg.host}"\nca = "ca.pem"\n'
        client = Registries(hosts_dir=hosts_toml(tmp_path / "b", reg.host, text, reg.ca))
        with pytest.raises(Unavailable):
            await pull(client, f"{reg.host}/nothing")


async def test_headers_go_to_their_host_only(
    published_images: PublishedImages, faulty: FaultyRegistry, tmp_path: Path
) -> None:
    faulty.redirect_blobs(True)
    text = f'server = "http://{faulty.host}"\n[header]\n  X-Flotilla = ["a", "b"]\n'
    client = Registries(hosts_dir=hosts_toml(tmp_path, faulty.host, text))
    assert await pull(client, f"{faulty.host}/busybox")
    assert faulty.requests
    assert all(seen.headers.get("X-Flotilla") == "a, b" for seen in faulty.requests)
    assert faulty.redirected_headers  # the config came from the blob host, without them
    assert all("X-Flotilla" not in h for h in faulty.redirected_headers)
    assert all(h.get("User-Agent") == "flotilla/0.1" for h in faulty.redirected_headers)


async def test_no_plain_http_after_a_certificate_failure(tls: TLSRegistry, tmp_path: Path) -> None:
    async with tls_registry() as other:
        # An http server entry with TLS settings tries https first (containerd's fallback),
        # but a certificate that fails verification is no reason to drop TLS.
        text = f'server = "http://{tls.host}"\nca = "ca.pem"\n'
        client = Registries(hosts_dir=hosts_toml(tmp_path, tls.host, text, other.ca))
        with pytest.raises(Unavailable, match="certificate verify failed"):
            await pull(client, f"{tls.host}/busybox")
