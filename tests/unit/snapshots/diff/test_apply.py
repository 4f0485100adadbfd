"""LayerApplier on real mounts: a bind's source, an overlay's upper, a temporary mount."""

from __future__ import annotations

import asyncio
import gzip
import os
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zstandard
from unpack_tars import Member, directory, file, sha256, tar_bytes, tree

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, mount_all, unmount
from flotilla.content.helpers import write_blob
from flotilla.content.local import LocalStore
from flotilla.snapshots.diff.apply import LayerApplier, target_of
from flotilla.snapshots.diff.differ import (
    DOCKER_LAYER_GZIP,
    LAYER_GZIP,
    LAYER_TAR,
    LAYER_ZSTD,
    Descriptor,
)
from flotilla.snapshots.diff.unpack import Whiteouts
from flotilla.testkit.events import RecordingPublisher

pytestmark = pytest.mark.root
NS = "unit"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def applier(store: LocalStore, work_dir: Path) -> LayerApplier:
    return LayerApplier(store.blob_path, max_size=64 << 20, work_dir=work_dir)


async def put(store: LocalStore, tar: bytes, media_type: str = LAYER_GZIP) -> Descriptor:
    """The tar, compressed as ``media_type`` says, as a blob of the store."""
    if media_type in (LAYER_GZIP, DOCKER_LAYER_GZIP):
        data = await asyncio.to_thread(gzip.compress, tar)
    elif media_type == LAYER_ZSTD:
        data = await asyncio.to_thread(zstandard.ZstdCompressor().compress, tar)
    else:
        data = tar
    digest = await write_blob(store, NS, f"layer-{uuid.uuid4().hex}", data)
    return Descriptor(media_type=media_type, digest=digest, size=len(data))


def make(root: Path, *paths: str) -> Path:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    return root


def bind(source: Path, *options: str, target: str = "") -> Mount:
    return Mount(type="bind", source=str(source), target=target, options=("rbind", *options))


def overlay(lower: Path, upper: Path | None, work: Path | None) -> Mount:
    options = [f"lowerdir={lower}"]
    if upper is not None and work is not None:
        options += [f"upperdir={upper}", f"workdir={work}"]
    return Mount(type="overlay", source="overlay", options=tuple(options))


LAYER: tuple[Member, ...] = (
    directory("etc"),
    file("etc/.wh.gone"),
    file("etc/new", b"new"),
    directory("dir"),
    file("dir/.wh..wh..opq"),
    file("dir/fresh", b"fresh"),
)


def test_the_target_is_chosen_as_containerd_chooses_it(tmp_path: Path) -> None:
    upper, work = tmp_path / "upper", tmp_path / "work"
    assert target_of([bind(tmp_path, "rw")]) == (tmp_path, Whiteouts.DELETE)
    assert target_of([overlay(tmp_path, upper, work)]) == (upper, Whiteouts.OVERLAY)
    assert target_of([bind(tmp_path, "ro")]) is None
    assert target_of([overlay(tmp_path, None, None)]) is None
    assert target_of([bind(tmp_path, "rw"), bind(upper, "rw", target="x")]) is None
    assert target_of([Mount(type="tmpfs", source="tmpfs")]) is None
    assert target_of([bind(tmp_path, "rw", target="sub")]) is None


async def test_a_bind_mount_is_unpacked_into_its_source(
    tmp_path: Path, store: LocalStore, applier: LayerApplier
) -> None:
    snapshot = make(tmp_path / "snapshot", "etc/gone", "etc/kept", "dir/old/x")
    tar = tar_bytes(*LAYER)
    applied = await applier.apply(NS, await put(store, tar), [bind(snapshot, "rw")])
    assert applied == Descriptor(media_type=LAYER_TAR, digest=sha256(tar), size=len(tar))
    assert sorted(tree(snapshot)) == ["dir", "dir/fresh", "etc", "etc/kept", "etc/new"]


async def test_an_overlay_is_unpacked_into_its_upper_directory(
    tmp_path: Path, store: LocalStore, applier: LayerApplier
) -> None:
    lower = make(tmp_path / "lower", "etc/gone", "etc/kept", "dir/old/x")
    upper, work, merged = (tmp_path / name for name in ("upper", "ovl-work", "merged"))
    for directory_path in (upper, work, merged):
        directory_path.mkdir()
    before = tree(lower, dir_times=True)
    mount = overlay(lower, upper, work)
    tar = tar_bytes(*LAYER)
    applied = await applier.apply(NS, await put(store, tar, LAYER_ZSTD), [mount])
    assert applied.digest == sha256(tar)
    assert tree(lower, dir_times=True) == before  # the lower directory is never touched
    gone = (upper / "etc/gone").lstat()
    assert stat.S_ISCHR(gone.st_mode)
    assert gone.st_rdev == 0
    assert os.getxattr(upper / "dir", "trusted.overlay.opaque") == b"y"
    # And overlayfs reads the markers as deletions.
    await asyncio.to_thread(mount_all, [mount], merged)
    try:
        assert sorted(tree(merged)) == ["dir", "dir/fresh", "etc", "etc/kept", "etc/new"]
    finally:
        await asyncio.to_thread(unmount, merged)


async def test_an_upper_directory_alone_gets_overlay_whiteouts(
    tmp_path: Path, store: LocalStore, applier: LayerApplier
) -> None:
    """A layer applied before its parents are known (containerd's parallel unpack): the
    caller names the snapshot's directory as an overlay upper with no lower (never mounted),
    so that whiteouts become overlayfs markers for the parents it is rebased onto."""
    upper = tmp_path / "upper"
    upper.mkdir()
    mount = Mount(type="overlay", source="overlay", options=("rw", f"upperdir={upper}"))
    await applier.apply(NS, await put(store, tar_bytes(*LAYER)), [mount])
    assert stat.S_ISCHR((upper / "etc/gone").lstat().st_mode)
    assert os.getxattr(upper / "dir", "trusted.overlay.opaque") == b"y"


async def test_other_mounts_are_mounted_and_unpacked_into(
    tmp_path: Path, store: LocalStore, applier: LayerApplier, work_dir: Path
) -> None:
    snapshot = make(tmp_path / "snapshot", "etc/gone", "etc/kept", "dir/old/x")
    tar = tar_bytes(*LAYER)
    # A bind spelled as mount(8) spells it: not the fast path, so it is mounted.
    mount = Mount(type="none", source=str(snapshot), options=("rbind", "rw"))
    assert target_of([mount]) is None
    applied = await applier.apply(NS, await put(store, tar, DOCKER_LAYER_GZIP), [mount])
    assert applied.digest == sha256(tar)
    assert sorted(tree(snapshot)) == ["dir", "dir/fresh", "etc", "etc/kept", "etc/new"]
    assert not os.listdir(work_dir)  # the temporary mount point is gone


async def test_a_mounted_overlay_makes_its_own_whiteouts(
    tmp_path: Path, store: LocalStore, applier: LayerApplier
) -> None:
    lower = make(tmp_path / "lower", "etc/gone", "etc/kept", "dir/old/x")
    upper, work, merged = (tmp_path / name for name in ("upper", "ovl-work", "merged"))
    for directory_path in (upper, work, merged):
        directory_path.mkdir()
    before = tree(lower, dir_times=True)
    base = make(tmp_path / "base", "hidden")
    # Two mounts stacked on one target: no fast path, the overlay on top is written through.
    mounts = [bind(base, "ro"), overlay(lower, upper, work)]
    tar = tar_bytes(*LAYER)
    assert (await applier.apply(NS, await put(store, tar), mounts)).digest == sha256(tar)
    assert tree(lower, dir_times=True) == before
    assert stat.S_ISCHR((upper / "etc/gone").lstat().st_mode)  # made by overlayfs
    await asyncio.to_thread(mount_all, [mounts[1]], merged)
    try:
        assert sorted(tree(merged)) == ["dir", "dir/fresh", "etc", "etc/kept", "etc/new"]
    finally:
        await asyncio.to_thread(unmount, merged)


async def test_a_read_only_target_fails_with_read_only_file_system(
    tmp_path: Path, store: LocalStore, applier: LayerApplier
) -> None:
    lower = make(tmp_path / "lower", "etc/kept")
    bottom = make(tmp_path / "bottom", "etc/base")
    layer = await put(store, tar_bytes(file("new", b"n")))
    # Without an upper directory overlayfs wants two lower ones.
    view = Mount(type="overlay", source="overlay", options=(f"lowerdir={lower}:{bottom}",))
    with pytest.raises(errdefs.FailedPrecondition, match=f"{layer.digest}.*read-only"):
        await applier.apply(NS, layer, [view])
    with pytest.raises(errdefs.FailedPrecondition, match="read-only"):
        await applier.apply(NS, layer, [bind(lower, "ro")])
    assert sorted(tree(lower)) == ["etc", "etc/kept"]


async def test_a_wrong_diff_id_leaves_the_target_as_it_was(
    tmp_path: Path, store: LocalStore, applier: LayerApplier
) -> None:
    snapshot = make(tmp_path / "snapshot", "etc/gone", "etc/kept")
    before = tree(snapshot)
    tar = tar_bytes(file("etc/new", b"n"), file("bin/sh", b"sh"))
    layer = await put(store, tar)
    wrong = "sha256:" + "2" * 64
    with pytest.raises(errdefs.FailedPrecondition) as caught:
        await applier.apply(NS, layer, [bind(snapshot, "rw")], diff_id=wrong)
    assert wrong in str(caught.value)
    assert sha256(tar) in str(caught.value)
    assert tree(snapshot) == before
    right = await applier.apply(NS, layer, [bind(snapshot, "rw")], diff_id=sha256(tar))
    assert right.digest == sha256(tar)


async def test_errors_name_the_layer(
    tmp_path: Path, store: LocalStore, applier: LayerApplier
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    layer = await put(store, tar_bytes(file("../evil", b"x")))
    with pytest.raises(
        errdefs.InvalidArgument, match=f"layer {layer.digest}: layer entry '../evil'"
    ):
        await applier.apply(NS, layer, [bind(target, "rw")])
    assert list(target.iterdir()) == []


async def test_unknown_media_types_and_missing_blobs(
    tmp_path: Path, store: LocalStore, applier: LayerApplier
) -> None:
    target = [bind(tmp_path, "rw")]
    missing = "sha256:" + "3" * 64
    odd = Descriptor(media_type="application/vnd.oci.image.config.v1+json", digest=missing)
    with pytest.raises(errdefs.InvalidArgument, match=r"config\.v1"):
        await applier.apply(NS, odd, target)  # refused before the blob is looked up
    with pytest.raises(errdefs.NotFound):
        await applier.apply(NS, Descriptor(media_type=LAYER_GZIP, digest=missing), target)
    layer = await put(store, tar_bytes(file("f")))
    with pytest.raises(errdefs.NotFound):
        await applier.apply("elsewhere", layer, target)
    with pytest.raises(errdefs.InvalidArgument, match="no mounts"):
        await applier.apply(NS, layer, [])


async def test_the_size_limit_applies(tmp_path: Path, store: LocalStore) -> None:
    applier = LayerApplier(store.blob_path, max_size=1 << 20)
    target = tmp_path / "target"
    target.mkdir()
    layer = await put(store, tar_bytes(file("big", bytes(2 << 20))))
    with pytest.raises(errdefs.ResourceExhausted, match=layer.digest):
        await applier.apply(NS, layer, [bind(target, "rw")])
    assert list(target.iterdir()) == []


def _many_small_files() -> bytes:
    return tar_bytes(*(file(f"d{i % 10}/f{i}", b"x" * 100) for i in range(2000)))


async def test_a_cancelled_apply_stops_and_undoes_before_returning(
    tmp_path: Path, store: LocalStore
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    tar = await asyncio.to_thread(_many_small_files)
    layer = await put(store, tar)
    task: asyncio.Task[Descriptor] | None = None

    async def blob_path(namespace: str, digest: str) -> Path:
        path = await store.blob_path(namespace, digest)
        # Cancelled once this returns: right after the unpacking thread has been started.
        assert task is not None
        asyncio.get_running_loop().call_soon(task.cancel)
        return path

    applier = LayerApplier(blob_path)
    task = asyncio.create_task(applier.apply(NS, layer, [bind(target, "rw")]))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(target.iterdir()) == []  # undone before apply returned
