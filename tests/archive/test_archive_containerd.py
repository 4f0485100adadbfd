"""Flotilla's archives and containerd's ``ctr images import/export`` read each other.

A ``docker save`` tarball gets the very manifest containerd builds for it (same digest); our
export of a two-platform index imports into containerd under its name and digest, and what
``ctr images export`` writes imports back here with the same digests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.archive.kit import blobs_in

from flotilla.content.local import LocalStore
from flotilla.images.archive import export_archive, import_archive
from flotilla.testkit import Containerd, export_oci_tar
from flotilla.testkit._proc import run
from flotilla.testkit.publish import ImageSet

pytestmark = [pytest.mark.root, pytest.mark.programs("containerd", "ctr", "skopeo")]

NS = "archive"


async def listed(ctd: Containerd) -> dict[str, str]:
    """``ctr images ls``: name -> target digest."""
    out = await ctd.ctr("images", "ls", namespace=NS)
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    return {row[0]: row[2] for row in rows}


async def test_a_docker_tarball_gets_containerds_manifest(
    images: ImageSet, store: LocalStore, containerd: Containerd, tmp_path: Path
) -> None:
    docker_tar = tmp_path / "docker.tar"
    name = "example.com/x/busybox:v1"
    await run(
        "skopeo", "--insecure-policy", "copy", images.busybox.oci_reference,
        f"docker-archive:{docker_tar}:{name}",
    )  # fmt: skip

    imported = await import_archive(docker_tar, store, NS)
    await containerd.ctr("images", "import", "--no-unpack", str(docker_tar), namespace=NS)

    [(ours, target)] = imported.images
    assert ours == name
    assert (await listed(containerd))[name] == target.digest


async def test_exports_cross_both_ways(
    images: ImageSet, store: LocalStore, containerd: Containerd, tmp_path: Path
) -> None:
    image, name = images.multiarch, "docker.io/library/multiarch:both"
    source = await export_oci_tar(image, tmp_path / "in.tar", image_name=name)
    first = await import_archive(source, store, NS)
    ours = tmp_path / "ours.tar"
    await export_archive(ours, store, NS, first.images)

    await containerd.ctr(
        "images", "import", "--all-platforms", "--no-unpack", str(ours), namespace=NS
    )
    assert (await listed(containerd))[name] == image.digest
    theirs = tmp_path / "theirs.tar"
    await containerd.ctr("images", "export", "--all-platforms", str(theirs), name, namespace=NS)
    back = await import_archive(theirs, store, "back")

    assert [(n, d.digest) for n, d in back.images] == [(name, image.digest)]
    assert await blobs_in(store, "back") == await blobs_in(store, NS)
