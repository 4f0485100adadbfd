"""export_archive from a LocalStore: the layout it writes, platforms, and what it refuses."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.archive.kit import (
    Tiny,
    blob_name,
    blobs_in,
    layout_entries,
    named,
    tiny_image,
    tiny_index,
    write_tar,
)

from flotilla.common.errdefs import DataLoss, InvalidArgument, NotFound
from flotilla.content.local import LocalStore
from flotilla.images import oci
from flotilla.images.archive import export_archive, import_archive
from flotilla.images.platforms import Platform, only
from flotilla.testkit.events import RecordingPublisher

NS = "exports"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened


def members(data: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        found: dict[str, bytes | None] = {}
        for member in tar:
            reader = tar.extractfile(member)
            found[member.name] = reader.read() if reader else None
        return found


async def test_a_layout_with_names_and_a_docker_manifest(tmp_path: Path, store: LocalStore) -> None:
    one, multi = tiny_image("one"), tiny_index("multi")
    tar = write_tar(
        tmp_path / "in.tar",
        layout_entries((one, named(one.target, "x")), (multi, named(multi.target, "y"))),
    )
    await import_archive(tar, store, NS)
    images = [
        ("docker.io/library/one:1", desc_of(one)),
        ("example.com/team/one@" + one.target["digest"], desc_of(one)),
        ("docker.io/library/multi:2", desc_of(multi)),
    ]
    out = io.BytesIO()

    await export_archive(out, store, NS, images, platforms=only(Platform("linux", "arm64")))

    found = members(out.getvalue())
    names = list(found)
    assert names == sorted(names)  # as containerd writes them
    assert json.loads(found["oci-layout"] or b"") == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(found["index.json"] or b"")
    assert [entry["annotations"] for entry in index["manifests"]] == [
        {"io.containerd.image.name": "docker.io/library/one:1",
         "org.opencontainers.image.ref.name": "1"},
        {"io.containerd.image.name": "example.com/team/one@" + one.target["digest"],
         "org.opencontainers.image.ref.name": one.target["digest"]},
        {"io.containerd.image.name": "docker.io/library/multi:2",
         "org.opencontainers.image.ref.name": "2"},
    ]  # fmt: skip
    arm = json.loads(multi.blobs[multi.target["digest"]])["manifests"][1]["digest"]
    arm_manifest = json.loads(multi.blobs[arm])
    docker = json.loads(found["manifest.json"] or b"")
    assert docker == [
        {"Config": blob_name(one.config), "RepoTags": ["one:1"],
         "Layers": [blob_name(d) for d in one.layers]},
        {"Config": blob_name(arm_manifest["config"]["digest"]), "RepoTags": ["multi:2"],
         "Layers": [blob_name(layer["digest"]) for layer in arm_manifest["layers"]]},
    ]  # fmt: skip
    amd = json.loads(multi.blobs[multi.target["digest"]])["manifests"][0]["digest"]
    blobs = {name for name, data in found.items() if name.startswith("blobs/") and data}
    left_out = {amd, *amd_parts(multi, amd)}  # the other platform's blobs
    assert blobs == {blob_name(d) for d in {*one.blobs, *multi.blobs} - left_out}
    for name in blobs:
        assert found[name] == (one.blobs | multi.blobs)["sha256:" + name.rsplit("/", 1)[1]]


def amd_parts(multi: Tiny, manifest: str) -> set[str]:
    """A manifest's config and layer digests (the two platforms share none)."""
    parsed = json.loads(multi.blobs[manifest])
    return {parsed["config"]["digest"], *(layer["digest"] for layer in parsed["layers"])}


def desc_of(image: Tiny) -> oci.Descriptor:
    target = image.target
    return oci.Descriptor(
        media_type=target["mediaType"], digest=target["digest"], size=target["size"]
    )


async def test_a_round_trip_keeps_every_digest(tmp_path: Path, store: LocalStore) -> None:
    multi = tiny_index()
    await import_archive(
        write_tar(tmp_path / "in.tar", layout_entries((multi, named(multi.target, "m:1")))),
        store,
        NS,
    )
    out = tmp_path / "out.tar"

    await export_archive(out, store, NS, [("docker.io/library/m:1", desc_of(multi))])
    again = await import_archive(out, store, "again")

    assert [(name, d.digest) for name, d in again.images] == [
        ("docker.io/library/m:1", multi.target["digest"])
    ]
    assert await blobs_in(store, "again") == await blobs_in(store, NS)


async def test_a_store_holding_some_platforms_exports_those(
    tmp_path: Path, store: LocalStore
) -> None:
    multi = tiny_index()
    await import_archive(
        write_tar(tmp_path / "in.tar", layout_entries((multi, named(multi.target, "m:1")))),
        store,
        NS,
        platforms=only(Platform("linux", "amd64")),
    )
    arm = json.loads(multi.blobs[multi.target["digest"]])["manifests"][1]["digest"]
    out = io.BytesIO()

    await export_archive(out, store, NS, [("m:1", desc_of(multi))], docker_manifest=False)

    found = members(out.getvalue())
    assert blob_name(arm) not in found
    assert "manifest.json" not in found
    with pytest.raises(NotFound, match=f"manifest {arm} named by index .*: not in the content"):
        await export_archive(
            io.BytesIO(), store, NS, [("m:1", desc_of(multi))],
            platforms=only(Platform("linux", "arm64")),
        )  # fmt: skip


async def test_a_missing_blob_fails_and_leaves_no_file(tmp_path: Path, store: LocalStore) -> None:
    one = tiny_image()
    await import_archive(
        write_tar(tmp_path / "in.tar", layout_entries((one, named(one.target, "o:1")))), store, NS
    )
    await store.delete(NS, one.layers[0])
    out = tmp_path / "out.tar"

    with pytest.raises(NotFound, match=f"layer {one.layers[0]} named by manifest"):
        await export_archive(out, store, NS, [("o:1", desc_of(one))])
    assert not out.exists()
    with pytest.raises(NotFound, match=r"manifest sha256:.* named by image gone:1"):
        await export_archive(out, store, "empty", [("gone:1", desc_of(one))])


async def test_bytes_not_matching_their_digest_fail(tmp_path: Path, store: LocalStore) -> None:
    one = tiny_image()
    await import_archive(
        write_tar(tmp_path / "in.tar", layout_entries((one, named(one.target, "o:1")))), store, NS
    )
    path = await store.blob_path(NS, one.layers[0])
    path.chmod(0o644)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    out = tmp_path / "out.tar"

    with pytest.raises(DataLoss, match=f"blob {one.layers[0]}: the store returned bytes"):
        await export_archive(out, store, NS, [("o:1", desc_of(one))])
    assert not out.exists()


async def test_a_target_of_another_media_type(store: LocalStore) -> None:
    layer = oci.Descriptor(media_type=oci.OCI_LAYER_GZIP, digest="sha256:" + "a" * 64, size=1)
    with pytest.raises(InvalidArgument, match=r"image l:1: target sha256:a+ has media type"):
        await export_archive(io.BytesIO(), store, NS, [("l:1", layer)])
