"""The kit's images through import and export, read back by skopeo, and docker-archive tarballs.

Round trips: an OCI tarball of each image imports with every blob of its layout, exports, and
imports again with the same digests and labels. skopeo reads our exports as ``oci-archive:``
(every blob copied out byte for byte) and, through ``manifest.json``, as ``docker-archive:``.
A ``docker save``-shaped tarball that skopeo writes imports as a Docker schema 2 image, plain
or gzip-compressed.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
from pathlib import Path

import pytest
from tests.archive.kit import blobs_in, digest

from flotilla.content.local import LocalStore
from flotilla.images import oci
from flotilla.images.archive import export_archive, import_archive
from flotilla.testkit import BuiltImage, export_oci_tar
from flotilla.testkit._proc import run
from flotilla.testkit.oci import host_platform
from flotilla.testkit.publish import ImageSet

pytestmark = pytest.mark.programs("skopeo")

NS = "tools"


def layout_blobs(image: BuiltImage) -> set[str]:
    return {"sha256:" + path.name for path in (image.layout / "blobs" / "sha256").iterdir()}


def image_of(images: ImageSet, name: str) -> BuiltImage:
    return {image.name: image for image in images}[name]


async def skopeo(*args: str) -> str:
    return await run("skopeo", "--insecure-policy", *args)


@pytest.mark.parametrize("name", ["busybox", "large", "multiarch"])
async def test_import_export_import_keeps_every_digest(
    images: ImageSet, store: LocalStore, tmp_path: Path, name: str
) -> None:
    image = image_of(images, name)
    full = f"docker.io/library/{name}:latest"
    source = await export_oci_tar(image, tmp_path / "in.tar", image_name=full)

    first = await import_archive(source, store, NS)
    assert [(n, d.digest) for n, d in first.images] == [(full, image.digest)]
    assert {d.digest for d in first.blobs} == layout_blobs(image)

    out = tmp_path / "out.tar"
    await export_archive(out, store, NS, first.images)
    second = await import_archive(out, store, "again")

    assert [(n, d.digest) for n, d in second.images] == [(full, image.digest)]
    assert await blobs_in(store, "again") == await blobs_in(store, NS)
    assert await store.list_statuses(NS) == await store.list_statuses("again") == []


async def test_skopeo_reads_the_export_as_oci_and_docker_archives(
    images: ImageSet, store: LocalStore, tmp_path: Path
) -> None:
    image = images.multiarch
    source = await export_oci_tar(image, tmp_path / "in.tar", image_name="example.com/m:v1")
    imported = await import_archive(source, store, NS)
    out = tmp_path / "out.tar"
    await export_archive(out, store, NS, imported.images)

    raw = await skopeo("inspect", "--raw", f"oci-archive:{out}:v1")
    assert digest(raw.encode()) == image.digest
    copied = tmp_path / "dir"
    await skopeo("copy", "--all", "--preserve-digests", f"oci-archive:{out}:v1", f"dir:{copied}")
    copied_blobs = set()
    for path in copied.iterdir():
        if len(path.name) == 64:  # configs and layers; manifests are <digest>.manifest.json
            assert digest(path.read_bytes()) == "sha256:" + path.name
            copied_blobs.add("sha256:" + path.name)
    documents = {d.digest for d in imported.blobs if d.media_type in oci.MANIFEST_TYPES}
    assert copied_blobs == layout_blobs(image) - documents - {image.digest}

    # manifest.json lists this node's manifest of the index, under its familiar name.
    docker = json.loads(await skopeo("inspect", "--raw", f"docker-archive:{out}"))
    config = json.loads(await skopeo("inspect", "--config", "--raw", f"docker-archive:{out}"))
    assert docker["config"]["digest"] in {d.digest for d in imported.blobs}
    assert config["architecture"] == image_arch()
    await skopeo("copy", f"docker-archive:{out}:example.com/m:v1", f"dir:{tmp_path / 'd2'}")


def image_arch() -> str:
    return host_platform().architecture


def gzipped(path: Path) -> Path:
    packed = path.with_suffix(".tar.gz")
    with path.open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return packed


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
async def test_a_docker_archive_imports_as_schema2(
    images: ImageSet, store: LocalStore, tmp_path: Path, compress: bool
) -> None:
    image = images.busybox
    docker_tar = tmp_path / "docker.tar"
    await skopeo(
        "copy", image.oci_reference, f"docker-archive:{docker_tar}:example.com/x/busybox:v1"
    )
    if compress:
        docker_tar = await asyncio.to_thread(gzipped, docker_tar)

    imported = await import_archive(docker_tar, store, NS)

    [(name, target)] = imported.images
    assert name == "example.com/x/busybox:v1"
    assert target.media_type == oci.DOCKER_MANIFEST
    assert target.platform is not None
    assert target.platform.architecture == image_arch()
    path = await store.blob_path(NS, target.digest)
    manifest = oci.decode_manifest(path.read_bytes(), target)
    config_path = await store.blob_path(NS, manifest.config.digest)
    config = oci.decode_config(config_path.read_bytes(), manifest.config, len(manifest.layers))
    assert manifest.config.media_type == oci.DOCKER_CONFIG
    # skopeo writes the layers uncompressed: their digests are the diffIDs.
    assert [layer.media_type for layer in manifest.layers] == [
        "application/vnd.docker.image.rootfs.diff.tar"
    ] * len(manifest.layers)
    assert [layer.digest for layer in manifest.layers] == config.rootfs.diff_ids
    assert await store.list_statuses(NS) == []

    # And it exports as an OCI tarball skopeo reads.
    out = tmp_path / "out.tar"
    await export_archive(out, store, NS, imported.images)
    raw = await skopeo("inspect", "--raw", f"oci-archive:{out}")
    assert digest(raw.encode()) == target.digest
