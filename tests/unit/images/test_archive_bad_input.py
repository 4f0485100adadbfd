"""import_archive refuses bad tarballs in one line naming the entry or blob, and leaves no ingest.

After every refusal the store holds only blobs whose bytes are what their digest says (those
written before the fault; the caller's lease collects them) and no open ingest.
"""

from __future__ import annotations

import asyncio
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.archive.kit import (
    CONFIG,
    MANIFEST,
    Entry,
    assert_clean,
    blob_name,
    blobs_in,
    canonical,
    desc,
    file,
    hardlink,
    layout_entries,
    named,
    replaced,
    special,
    symlink,
    tiny_image,
    tiny_index,
    without,
    write_tar,
)

from flotilla.common.errdefs import ErrdefsError, InvalidArgument, NotFound, ResourceExhausted
from flotilla.content.local import LocalStore
from flotilla.images.archive import entries as entries_module
from flotilla.images.archive import import_archive
from flotilla.testkit.events import RecordingPublisher

NS = "bad"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened


def good() -> tuple[list[Entry], dict[str, str]]:
    """A valid layout, and its manifest, config and layer digests."""
    image = tiny_image()
    entries = layout_entries((image, named(image.target, "bad:1")))
    return entries, {
        "manifest": image.target["digest"],
        "config": image.config,
        "layer": image.layers[0],
    }


async def refused(
    tmp_path: Path, store: LocalStore, entries: list[Entry], kind: type[ErrdefsError], match: str
) -> str:
    # In a worker thread: a 4 MiB manifest takes a while to write.
    tar = await asyncio.to_thread(write_tar, tmp_path / "bad.tar", entries)
    with pytest.raises(kind, match=match) as caught:
        await import_archive(tar, store, NS)
    message = str(caught.value)
    assert "\n" not in message
    await assert_clean(store, NS)
    return message


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (file("../x", b"x"), r"tar entry '\.\./x': leaves the archive's root"),
        (file("blobs/../../x", b"x"), r"'blobs/\.\./\.\./x': leaves the archive's root"),
        (file("/etc/x", b"x"), r"tar entry '/etc/x': absolute path"),
        (symlink("blobs/up", "../../etc/passwd"), r"'blobs/up': link to .* leaves the archive"),
        (symlink("up", "/etc/passwd"), r"'up': link to absolute path '/etc/passwd'"),
        (hardlink("hard", "../outside"), r"'hard': link to '\.\./outside' leaves the archive"),
        (hardlink("hard", "/etc/shadow"), r"'hard': link to absolute path"),
        (special("fifo"), r"tar entry 'fifo': not a file, directory or link"),
        (special("dev", tarfile.CHRTYPE), r"tar entry 'dev': not a file, directory or link"),
    ],
)
async def test_an_entry_leaving_the_root_is_refused(
    tmp_path: Path, store: LocalStore, entry: Entry, match: str
) -> None:
    entries, _ = good()
    await refused(tmp_path, store, [entry, *entries], InvalidArgument, match)
    assert await blobs_in(store, NS) == {}


async def test_a_blob_behind_a_link_is_read_by_its_name_only(
    tmp_path: Path, store: LocalStore
) -> None:
    entries, digests = good()
    name = blob_name(digests["layer"])
    layer = next(data for info, data in entries if info.name == name)
    assert layer is not None
    # The layer's name is a link to a regular entry holding other bytes: those are read, and
    # the store refuses them; nothing on disk is ever followed.
    other = [file("elsewhere", layer[:-1] + b"!"), symlink(name, "../../elsewhere")]
    await refused(
        tmp_path, store, [*other, *without(entries, name)], InvalidArgument, digests["layer"]
    )


async def test_an_entry_named_twice_is_ambiguous(tmp_path: Path, store: LocalStore) -> None:
    entries, _ = good()
    await refused(
        tmp_path, store, [*entries, file("index.json", b"{}")], InvalidArgument,
        r"tar entry 'index.json' appears twice",
    )  # fmt: skip


async def test_a_missing_layer_is_named(tmp_path: Path, store: LocalStore) -> None:
    entries, digests = good()
    layer = digests["layer"]
    message = await refused(
        tmp_path, store, without(entries, blob_name(layer)), NotFound,
        f"layer {layer} named by manifest {digests['manifest']}",
    )  # fmt: skip
    assert blob_name(layer) in message
    assert await blobs_in(store, NS) == {}


async def test_a_missing_manifest_is_named(tmp_path: Path, store: LocalStore) -> None:
    entries, digests = good()
    manifest = digests["manifest"]
    await refused(
        tmp_path, store, without(entries, blob_name(manifest)), NotFound,
        f"manifest {manifest} named by index.json is not in the archive",
    )  # fmt: skip


async def test_an_index_without_any_of_its_manifests(tmp_path: Path, store: LocalStore) -> None:
    image = tiny_index()
    entries = layout_entries((image, named(image.target, "m:1")))
    for child in json.loads(image.blobs[image.target["digest"]])["manifests"]:
        entries = without(entries, blob_name(child["digest"]))
    await refused(
        tmp_path, store, entries, NotFound, f"index {image.target['digest']}: none of its 2"
    )


async def test_a_layer_not_matching_its_digest(tmp_path: Path, store: LocalStore) -> None:
    entries, digests = good()
    name = blob_name(digests["layer"])
    layer = next(data for info, data in entries if info.name == name)
    assert layer is not None
    corrupt = layer[:-1] + bytes([layer[-1] ^ 1])
    # The config comes first and is committed; the layer's commit is refused and aborted.
    order = [e for e in entries if e[0].name != name] + [file(name, corrupt)]
    message = await refused(tmp_path, store, order, InvalidArgument, digests["layer"])
    assert name in message
    assert digests["layer"] not in await blobs_in(store, NS)


async def test_a_manifest_not_matching_its_digest(tmp_path: Path, store: LocalStore) -> None:
    entries, digests = good()
    name = blob_name(digests["manifest"])
    data = next(d for info, d in entries if info.name == name)
    assert data is not None
    await refused(
        tmp_path, store, replaced(entries, name, data.replace(b"2", b"3", 1)), InvalidArgument,
        f"blob {digests['manifest']} .*: its bytes have digest sha256:",
    )  # fmt: skip
    assert await blobs_in(store, NS) == {}


async def test_a_size_differing_from_the_descriptor(tmp_path: Path, store: LocalStore) -> None:
    entries, digests = good()
    name = blob_name(digests["config"])
    await refused(
        tmp_path, store, replaced(entries, name, b"{}"), InvalidArgument,
        f"blob {digests['config']} .*: 2 bytes, but manifest .* says",
    )  # fmt: skip


def oversized() -> tuple[list[Entry], bytes]:
    image = tiny_image()
    manifest = json.loads(image.blobs[image.target["digest"]])
    manifest["annotations"] = {"padding": "x" * (4 << 20)}
    big = canonical(manifest)
    entries = layout_entries((image, named(desc(MANIFEST, big), "big:1")))
    entries.append(file(blob_name(desc(MANIFEST, big)["digest"]), big))
    return entries, big


async def test_a_manifest_over_4_mib(tmp_path: Path, store: LocalStore) -> None:
    entries, big = await asyncio.to_thread(oversized)
    message = await refused(
        tmp_path, store, entries, InvalidArgument, rf"{len(big)} bytes, more than {4 << 20}"
    )
    assert desc(MANIFEST, big)["digest"] in message


async def test_a_config_of_another_media_type(tmp_path: Path, store: LocalStore) -> None:
    image = tiny_image()
    manifest = json.loads(image.blobs[image.target["digest"]])
    manifest["config"]["mediaType"] = "application/json"
    odd = canonical(manifest)
    entries = layout_entries((image, named(desc(MANIFEST, odd), "odd:1")))
    entries.append(file(blob_name(desc(MANIFEST, odd)["digest"]), odd))
    await refused(tmp_path, store, entries, InvalidArgument, "not an image config")
    assert CONFIG  # the kit's media type, for the reader


@pytest.mark.parametrize("cut", ["inside a layer", "after an entry"])
async def test_a_truncated_tarball(tmp_path: Path, store: LocalStore, cut: str) -> None:
    entries, digests = good()
    name = blob_name(digests["layer"])
    order = [e for e in entries if e[0].name != name] + [e for e in entries if e[0].name == name]
    whole = write_tar(tmp_path / "whole.tar", order).read_bytes()
    with tarfile.open(tmp_path / "whole.tar") as tar:
        last = tar.getmember(name)
    end = last.offset_data + (
        last.size // 2 if cut == "inside a layer" else -(-last.size // 512) * 512
    )
    (tmp_path / "bad.tar").write_bytes(whole[:end])
    with pytest.raises(InvalidArgument, match=r"truncated or corrupt") as caught:
        await import_archive(tmp_path / "bad.tar", store, NS)
    assert name in str(caught.value)
    await assert_clean(store, NS)
    assert await blobs_in(store, NS) == {}


async def test_a_truncated_gzip_stream(tmp_path: Path, store: LocalStore) -> None:
    entries, _ = good()
    whole = write_tar(tmp_path / "whole.tar.gz", entries, compress=True).read_bytes()
    (tmp_path / "bad.tar.gz").write_bytes(whole[: len(whole) - 20])
    with pytest.raises(InvalidArgument, match=r"truncated or corrupt"):
        await import_archive(tmp_path / "bad.tar.gz", store, NS)
    await assert_clean(store, NS)


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ([file("hello.txt", b"hi")], r"unknown format: neither an OCI image layout"),
        ([file("index.json", b'{"schemaVersion":2,"manifests":[]}')], r"unknown format"),
        ([file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')], r"without index.json"),
        ([file("oci-layout", b'{"imageLayoutVersion":"2"}'), file("index.json", b"{}")],
         r"oci-layout: unsupported version '2'"),
        ([file("manifest.json", b"[]")], r"manifest.json lists no image"),
        ([file("manifest.json", b'{"Config":1}')], r"manifest.json: Expected `array`"),
    ],
)  # fmt: skip
async def test_an_unknown_format(
    tmp_path: Path, store: LocalStore, entries: list[Entry], match: str
) -> None:
    await refused(tmp_path, store, entries, InvalidArgument, match)


async def test_not_a_tar_archive(tmp_path: Path, store: LocalStore) -> None:
    (tmp_path / "x.tar").write_bytes(b"this is not a tar archive at all" * 40)
    with pytest.raises(InvalidArgument, match=r"x.tar: not a tar archive"):
        await import_archive(tmp_path / "x.tar", store, NS)
    with pytest.raises(NotFound, match=r"nothing.tar: no such file"):
        await import_archive(tmp_path / "nothing.tar", store, NS)


async def test_a_docker_tarball_naming_a_missing_layer(tmp_path: Path, store: LocalStore) -> None:
    config = canonical(
        {
            "os": "linux",
            "architecture": "amd64",
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        }
    )
    entries = [
        file("c.json", config),
        file("manifest.json", json.dumps(
            [{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["gone/layer.tar"]}]).encode()),
    ]  # fmt: skip
    await refused(tmp_path, store, entries, NotFound, r"layer 'gone/layer.tar' is not in the")
    await refused(
        tmp_path, store, [*entries, file("gone/layer.tar", b"\x28\xb5\x2f\xfd rest")],
        InvalidArgument, r"gone/layer.tar: a zstd-compressed layer",
    )  # fmt: skip


async def test_a_docker_layer_link_leaving_the_root(tmp_path: Path, store: LocalStore) -> None:
    config = canonical({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}})
    entries = [
        file("c.json", config),
        symlink("l/layer.tar", "../../../etc/passwd"),
        file("manifest.json", json.dumps(
            [{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]}]).encode()),
    ]  # fmt: skip
    await refused(tmp_path, store, entries, InvalidArgument, r"'l/layer.tar': link to")


async def test_one_name_for_two_images(tmp_path: Path, store: LocalStore) -> None:
    one, two = tiny_image("one"), tiny_image("two")
    entries = layout_entries((one, named(one.target, "x:1")), (two, named(two.target, "x:1")))
    await refused(tmp_path, store, entries, InvalidArgument, r"index.json names two images 'x:1'")


async def test_too_many_json_documents(
    tmp_path: Path, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entries_module, "MAX_DOCUMENTS", 100)
    entries, _ = good()
    await refused(tmp_path, store, entries, ResourceExhausted, r"more than 100 bytes of JSON")
