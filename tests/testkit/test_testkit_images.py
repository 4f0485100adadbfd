from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest

from flotilla.testkit import (
    ImageSet,
    LayoutError,
    build_busybox,
    build_large,
    build_multiarch,
    export_oci_tar,
    host_platform,
    validate_layout,
)
from flotilla.testkit.busybox import APPLETS, PATH_ENV
from flotilla.testkit.layout import blob_path, read_index, read_json
from flotilla.testkit.oci import CONFIG, INDEX, LAYER_GZIP, MANIFEST, REF_NAME, Descriptor

from .conftest import SMALL_LARGE_SIZE


def _blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def _layers(layout: Path, manifest_desc: Descriptor) -> list[Path]:
    manifest = read_json(layout, manifest_desc)
    return [blob_path(layout, item["digest"]) for item in manifest["layers"]]


def _members(layer: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(layer, "r:gz") as tar:
        return tar.getmembers()


def test_builds_twice_with_identical_digests(images: ImageSet, tmp_path: Path) -> None:
    again = ImageSet(
        build_busybox(tmp_path),
        build_large(tmp_path, size=SMALL_LARGE_SIZE),
        build_multiarch(tmp_path),
    )
    for first, second in zip(images, again, strict=True):
        assert first.digest == second.digest
        assert first.layout != second.layout
        assert _blobs(first.layout) == _blobs(second.layout)
        assert (first.layout / "index.json").read_bytes() == (
            second.layout / "index.json"
        ).read_bytes()


def test_cache_reuses_an_intact_layout_and_rebuilds_a_broken_one(tmp_path: Path) -> None:
    first = build_busybox(tmp_path)
    stamp = (first.layout / "index.json").stat().st_mtime_ns
    assert build_busybox(tmp_path).layout == first.layout
    assert (first.layout / "index.json").stat().st_mtime_ns == stamp
    blob_path(first.layout, first.digest).unlink()
    rebuilt = build_busybox(tmp_path)
    assert rebuilt.digest == first.digest
    validate_layout(rebuilt.layout)


def test_layouts_validate_with_the_right_media_types(images: ImageSet) -> None:
    for image in images:
        reached = validate_layout(image.layout, verify_digests=True)
        (top,) = read_index(image.layout)
        assert top.digest == image.digest
        assert top.annotations[REF_NAME] == "latest"
        assert {d.media_type for d in reached} <= {INDEX, MANIFEST, CONFIG, LAYER_GZIP}
    assert (images.busybox.layout / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'
    assert images.multiarch.descriptor.media_type == INDEX
    assert images.large.descriptor.media_type == MANIFEST


def test_busybox_config_and_layer(images: ImageSet) -> None:
    layout, desc = images.busybox.layout, images.busybox.descriptor
    manifest = read_json(layout, desc)
    config = read_json(layout, Descriptor.from_json(manifest["config"]))
    assert config["config"]["Cmd"] == ["sh"]
    assert config["config"]["Env"] == [PATH_ENV]
    assert (config["os"], config["architecture"]) == ("linux", host_platform().architecture)
    (layer,) = _layers(layout, desc)
    members = {m.name: m for m in _members(layer)}
    with tarfile.open(layer, "r:gz") as tar:
        binary = tar.extractfile("bin/busybox")
        assert binary is not None
        assert binary.read() == Path("/bin/busybox").read_bytes()
    assert all(
        members[f"bin/{a}"].issym() and members[f"bin/{a}"].linkname == "busybox" for a in APPLETS
    )
    assert {"etc/passwd", "etc/group", "tmp"} <= set(members)
    assert members["tmp"].mode == 0o1777


def test_layers_are_deterministic_tars(images: ImageSet) -> None:
    for layer in _layers(images.large.layout, images.large.descriptor):
        raw = layer.read_bytes()
        assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME
        assert not raw[3] & 0x08  # no FNAME
        members = _members(layer)
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert all((m.uid, m.gid, m.mtime) == (0, 0, 0) for m in members)
        assert all(not m.pax_headers for m in members)


def test_large_image_has_links_whiteout_and_opaque_dir(images: ImageSet) -> None:
    layers = [_members(p) for p in _layers(images.large.layout, images.large.descriptor)]
    assert len(layers) == 8
    names = [{m.name: m for m in layer} for layer in layers]
    where = {name: i for i, layer in enumerate(names) for name in layer}
    assert where["data/doomed.txt"] < where["data/.wh.doomed.txt"]
    assert where["data/opaque/keep-a.txt"] < where["data/opaque/.wh..wh..opq"]
    hard = names[where["data/big/random-1.link"]]["data/big/random-1.link"]
    assert hard.islnk()
    assert hard.linkname == "data/big/random-1.bin"
    assert where[hard.linkname] == where[hard.name]
    assert names[where["data/big/current"]]["data/big/current"].issym()
    small = [n for n in where if n.startswith("usr/share/flotilla/small/") and n.endswith(".txt")]
    assert len(small) >= 64


def test_large_image_is_about_the_requested_size(images: ImageSet) -> None:
    total = sum(
        m.size for p in _layers(images.large.layout, images.large.descriptor) for m in _members(p)
    )
    busybox = os.path.getsize("/bin/busybox")
    assert 0.8 * SMALL_LARGE_SIZE < total - busybox < 1.3 * SMALL_LARGE_SIZE


def test_multiarch_index_has_two_distinct_platforms(images: ImageSet) -> None:
    layout = images.multiarch.layout
    index = read_json(layout, images.multiarch.descriptor)
    children = [Descriptor.from_json(item) for item in index["manifests"]]
    assert [str(c.platform) for c in children] == ["linux/amd64", "linux/arm64"]
    assert len({c.digest for c in children}) == 2
    for child in children:
        config = read_json(layout, Descriptor.from_json(read_json(layout, child)["config"]))
        assert child.platform is not None
        assert config["architecture"] == child.platform.architecture


def test_validation_catches_a_corrupt_blob(images: ImageSet, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "layout"
    shutil.copytree(images.busybox.layout, copy)
    (layer,) = _layers(copy, images.busybox.descriptor)
    data = bytearray(layer.read_bytes())
    data[100] ^= 0xFF
    layer.write_bytes(bytes(data))
    validate_layout(copy, verify_digests=False)  # sizes still match
    with pytest.raises(LayoutError, match="does not match its digest"):
        validate_layout(copy)


async def test_export_is_a_deterministic_oci_tarball(images: ImageSet, tmp_path: Path) -> None:
    first = await export_oci_tar(images.multiarch, tmp_path / "a.tar")
    second = await export_oci_tar(images.multiarch, tmp_path / "b.tar")
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        names = set(tar.getnames())
    assert {"oci-layout", "index.json"} <= names
    assert {f"blobs/sha256/{n}" for n in _blobs(images.multiarch.layout)} <= names
    with gzip.open(_layers(images.busybox.layout, images.busybox.descriptor)[0]) as stream:
        assert stream.read(1)  # layers stay gzip'd inside the tarball
