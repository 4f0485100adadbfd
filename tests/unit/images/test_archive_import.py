"""import_archive on small hand-made tarballs, into a LocalStore: what it writes and names."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.archive.kit import (
    assert_clean,
    blob_name,
    blobs_in,
    canonical,
    desc,
    digest,
    file,
    hardlink,
    layer_tar,
    layout_entries,
    named,
    symlink,
    tiny_image,
    tiny_index,
    without,
    write_tar,
)

from flotilla.content.local import LocalStore
from flotilla.images import oci
from flotilla.images.archive import import_archive
from flotilla.images.platforms import Platform, only
from flotilla.testkit.events import RecordingPublisher

NS = "imports"
GC = "containerd.io/gc.ref.content"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened


async def test_an_oci_layout_is_written_with_gc_labels(tmp_path: Path, store: LocalStore) -> None:
    image = tiny_image(layers=2)
    entries = layout_entries((image, named(image.target, "docker.io/library/tiny:1")))
    tar = write_tar(tmp_path / "tiny.tar", entries)

    imported = await import_archive(tar, store, NS)

    assert [(name, d.digest) for name, d in imported.images] == [
        ("docker.io/library/tiny:1", image.target["digest"])
    ]
    assert {d.digest for d in imported.blobs} == set(image.blobs)
    found = await blobs_in(store, NS)
    assert set(found) == set(image.blobs)
    assert found[image.target["digest"]] == {
        f"{GC}.config": image.config,
        f"{GC}.l.0": image.layers[0],
        f"{GC}.l.1": image.layers[1],
    }
    await assert_clean(store, NS)


async def test_an_index_names_its_manifests(tmp_path: Path, store: LocalStore) -> None:
    image = tiny_index()
    tar = write_tar(tmp_path / "multi.tar", layout_entries((image, named(image.target, "m:1"))))

    imported = await import_archive(tar, store, NS)

    assert imported.images[0][1].media_type == oci.OCI_INDEX
    index = json.loads(image.blobs[image.target["digest"]])
    found = await blobs_in(store, NS)
    assert found[image.target["digest"]] == {
        f"{GC}.m.{i}": child["digest"] for i, child in enumerate(index["manifests"])
    }


async def test_a_gzip_compressed_tarball_imports(tmp_path: Path, store: LocalStore) -> None:
    image = tiny_image()
    entries = layout_entries((image, named(image.target, "tiny:gz")))
    tar = write_tar(tmp_path / "tiny.tar.gz", entries, compress=True)

    imported = await import_archive(tar, store, NS)

    assert imported.images[0][0] == "tiny:gz"
    assert set(await blobs_in(store, NS)) == set(image.blobs)


async def test_a_bare_tag_is_joined_to_the_base_name(tmp_path: Path, store: LocalStore) -> None:
    image = tiny_image()
    entries = layout_entries(
        (image, named(image.target, "", ref="1.0")),
        (image, named(image.target, "", ref="ghcr.io/o/r:2")),
    )
    tar = write_tar(tmp_path / "tags.tar", entries)

    unnamed = await import_archive(tar, store, NS)
    based = await import_archive(tar, store, NS, base_name="example.com/app")

    assert [name for name, _ in unnamed.images] == ["ghcr.io/o/r:2"]
    assert [name for name, _ in based.images] == ["example.com/app:1.0", "ghcr.io/o/r:2"]


async def test_labels_go_on_new_and_present_blobs(tmp_path: Path, store: LocalStore) -> None:
    image = tiny_image()
    tar = write_tar(tmp_path / "t.tar", layout_entries((image, named(image.target, "t:1"))))
    await import_archive(tar, store, NS)

    await import_archive(tar, store, NS, labels={"containerd.io/gc.expire": "soon"})

    found = await blobs_in(store, NS)
    assert all(labels["containerd.io/gc.expire"] == "soon" for labels in found.values())
    assert found[image.target["digest"]][f"{GC}.config"] == image.config


async def test_only_the_manifests_present_or_wanted(tmp_path: Path, store: LocalStore) -> None:
    image = tiny_index()
    index = json.loads(image.blobs[image.target["digest"]])
    arm = index["manifests"][1]["digest"]
    entries = without(layout_entries((image, named(image.target, "m:1"))), blob_name(arm))
    tar = write_tar(tmp_path / "amd64.tar", entries)

    await import_archive(tar, store, NS)
    await import_archive(tar, store, "amd", platforms=only(Platform("linux", "amd64")))
    with pytest.raises(Exception, match=f"manifest {arm} named by index .* not in the archive"):
        await import_archive(tar, store, "arm", platforms=only(Platform("linux", "arm64")))

    labels = (await blobs_in(store, NS))[image.target["digest"]]
    assert labels == {f"{GC}.m.0": index["manifests"][0]["digest"]}
    await assert_clean(store, "arm")


async def test_a_docker_save_tarball_becomes_schema2_manifests(
    tmp_path: Path, store: LocalStore
) -> None:
    plain = layer_tar({"a.txt": b"a\n"}, compress=False)
    packed = layer_tar({"b.txt": b"b\n"})
    config = canonical(
        {
            "architecture": "arm64",
            "variant": "v8",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": [digest(plain), digest(gzip.decompress(packed))],
            },
        }
    )
    config_name = digest(config).removeprefix("sha256:") + ".json"
    manifest = [
        {"Config": config_name, "RepoTags": ["busybox:latest", "me/app:1"], "Layers": [
            "one/layer.tar", "two/layer.tar"]},
        {"Config": config_name, "RepoTags": None, "Layers": ["two/layer.tar", "dup/layer.tar"]},
    ]  # fmt: skip
    entries = [
        file("one/layer.tar", plain),
        file("two/layer.tar", packed),
        symlink("dup/layer.tar", "../one/layer.tar"),
        file(config_name, config),
        file("repositories", b"{}"),
        file("manifest.json", json.dumps(manifest).encode()),
    ]
    tar = write_tar(tmp_path / "docker.tar", entries)

    imported = await import_archive(tar, store, NS)

    names = [name for name, _ in imported.images]
    assert names == ["docker.io/library/busybox:latest", "docker.io/me/app:1"]
    target = imported.images[0][1]
    assert target.media_type == oci.DOCKER_MANIFEST
    assert target.platform == oci.Platform(architecture="arm64", os="linux")
    data = (await store.blob_path(NS, target.digest)).read_bytes()
    assert data == canonical_go(
        {
            "schemaVersion": 2,
            "mediaType": oci.DOCKER_MANIFEST,
            "config": desc(oci.DOCKER_CONFIG, config),
            "layers": [
                desc("application/vnd.docker.image.rootfs.diff.tar", plain),
                desc(oci.DOCKER_LAYER, packed),
            ],
        }
    )
    found = await blobs_in(store, NS)
    assert found[target.digest] == {
        f"{GC}.config": digest(config),
        f"{GC}.l.0": digest(plain),
        f"{GC}.l.1": digest(packed),
    }
    # config, two layers (dup/layer.tar is one/layer.tar), two manifests
    assert len(imported.blobs) == len(found) == 5
    await assert_clean(store, NS)


def canonical_go(value: object) -> bytes:
    """JSON as Go's encoding/json writes a struct: no spaces, fields in declared order."""
    return json.dumps(value, separators=(",", ":")).encode()


async def test_links_inside_the_archive_name_their_targets(
    tmp_path: Path, store: LocalStore
) -> None:
    image = tiny_image()
    entries = layout_entries((image, named(image.target, "links:1")))
    config, layer = blob_name(image.config), blob_name(image.layers[0])
    moved = [file("store/config", image.blobs[image.config]), hardlink(config, "store/config")]
    moved += [
        file("store/layer", image.blobs[image.layers[0]]),
        symlink(layer, "../../store/layer"),
    ]
    tar = write_tar(tmp_path / "links.tar", [*moved, *without(without(entries, config), layer)])

    await import_archive(tar, store, NS)

    assert set(await blobs_in(store, NS)) == set(image.blobs)
