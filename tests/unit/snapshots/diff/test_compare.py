"""LayerComparer into a real LocalStore: the fast path, a bind tree, mounted trees, labels."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, mount_all, unmount
from flotilla.content.helpers import read_blob
from flotilla.content.local import LocalStore
from flotilla.snapshots.diff.compare import LayerComparer, Plan, plan, read_only
from flotilla.snapshots.diff.differ import (
    DOCKER_LAYER_GZIP,
    LAYER_GZIP,
    LAYER_TAR,
    LAYER_ZSTD,
    UNCOMPRESSED_LABEL,
    Comparer,
    Descriptor,
)
from flotilla.testkit.events import RecordingPublisher

NS = "unit"


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def bind(directory: Path, mode: str = "ro") -> Mount:
    return Mount(type="bind", source=str(directory), options=(mode, "rbind"))


def overlay(lowers: list[Path], upper: Path, work: Path) -> Mount:
    options = (
        "index=off",
        f"workdir={work}",
        f"upperdir={upper}",
        f"lowerdir={':'.join(str(x) for x in lowers)}",
    )
    return Mount(type="overlay", source="overlay", options=options)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "diff-work"


@pytest.fixture
def comparer(store: LocalStore, work_dir: Path) -> LayerComparer:
    return LayerComparer(store, work_dir)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "base"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").write_bytes(b"127.0.0.1 localhost\n")
    (root / "etc" / "gone").write_bytes(b"gone")
    (root / "opt" / "app").mkdir(parents=True)
    (root / "opt" / "app" / "old").write_bytes(b"old")
    return root


class Layers:
    """A parent tree and an overlay on it, with changes made through the mount."""

    def __init__(self, tmp_path: Path, base: Path) -> None:
        self.lower = base
        self.upper, self.work, self.merged = (tmp_path / x for x in ("upper", "work", "merged"))
        for directory in (self.upper, self.work, self.merged):
            directory.mkdir()
        self.mount = overlay([base], self.upper, self.work)

    def copy_merged(self, target: Path) -> None:
        mount_all([self.mount], self.merged)
        try:
            subprocess.run(["cp", "-a", str(self.merged), str(target)], check=True)
        finally:
            unmount(self.merged)

    def change(self) -> None:
        mount_all([self.mount], self.merged)
        try:
            (self.merged / "etc" / "gone").unlink()
            (self.merged / "etc" / "hosts").write_bytes(b"10.0.0.1 other\n")
            shutil.rmtree(self.merged / "opt" / "app")
            (self.merged / "opt" / "app").mkdir()
            (self.merged / "opt" / "app" / "new").write_bytes(b"new" * 1000)
        finally:
            unmount(self.merged)


@pytest.fixture
def layers(tmp_path: Path, base: Path) -> Layers:
    made = Layers(tmp_path, base)
    made.change()
    return made


async def blob_tar(store: LocalStore, descriptor: Descriptor) -> bytes:
    blob = await read_blob(store, NS, descriptor.digest)
    assert sha256(blob) == descriptor.digest
    assert len(blob) == descriptor.size
    return gzip.decompress(blob) if descriptor.media_type.endswith("gzip") else blob


def tar_names(tar: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return [m.name + ("/" if m.isdir() else "") for m in archive.getmembers()]


@pytest.mark.root
async def test_the_overlay_fast_path_commits_a_gzip_layer_with_its_diff_id(
    comparer: LayerComparer, store: LocalStore, layers: Layers, work_dir: Path
) -> None:
    assert plan([bind(layers.lower)], [layers.mount]).upperdir == str(layers.upper)
    descriptor = await comparer.compare(
        NS, [bind(layers.lower)], [layers.mount], labels={"origin": "test"}
    )
    tar = await blob_tar(store, descriptor)
    assert descriptor.media_type == LAYER_GZIP
    info = await store.info(NS, descriptor.digest)
    assert info.labels == {"origin": "test", UNCOMPRESSED_LABEL: sha256(tar)}
    assert info.size == descriptor.size
    assert tar_names(tar) == [
        "etc/",
        "etc/.wh.gone",
        "etc/hosts",
        "opt/",
        "opt/app/",
        "opt/app/.wh..wh..opq",
        "opt/app/new",
    ]
    assert await store.list_statuses(NS) == []
    assert os.listdir(work_dir) == []


@pytest.mark.root
async def test_mounted_trees_are_walked_side_by_side(
    comparer: LayerComparer, store: LocalStore, layers: Layers, tmp_path: Path, work_dir: Path
) -> None:
    # The merged tree copied out: a native snapshot's directory, compared with its parent.
    copy = tmp_path / "copy"
    await asyncio.to_thread(layers.copy_merged, copy)
    assert plan([bind(layers.lower)], [bind(copy, "rw")]) == Plan()
    descriptor = await comparer.compare(
        NS, [bind(layers.lower)], [bind(copy, "rw")], media_type=LAYER_TAR
    )
    tar = await blob_tar(store, descriptor)
    info = await store.info(NS, descriptor.digest)
    assert info.labels == {UNCOMPRESSED_LABEL: descriptor.digest}
    assert tar_names(tar) == [
        "etc/",
        "etc/.wh.gone",
        "etc/hosts",
        "opt/",
        "opt/app/",
        "opt/app/new",
        "opt/app/.wh.old",
    ]
    assert os.listdir(work_dir) == []


@pytest.mark.root
async def test_an_overlay_on_other_lowers_is_mounted_and_walked(
    comparer: LayerComparer, store: LocalStore, layers: Layers, tmp_path: Path
) -> None:
    # The lower mounts are an overlay of the same directory: not the plain stack the
    # upper's lowerdirs name, so both are mounted (the upper read-only, without its workdir).
    empty = tmp_path / "empty"
    empty.mkdir()
    lower = [Mount(type="overlay", source="overlay", options=(f"lowerdir={layers.lower}:{empty}",))]
    assert plan(lower, [layers.mount]) == Plan()
    descriptor = await comparer.compare(NS, lower, [layers.mount], media_type=LAYER_TAR)
    names = tar_names(await blob_tar(store, descriptor))
    assert names == [
        "etc/",
        "etc/.wh.gone",
        "etc/hosts",
        "opt/",
        "opt/app/",
        "opt/app/new",
        "opt/app/.wh.old",
    ]


async def test_a_bind_mount_over_nothing_is_its_whole_tree(
    comparer: LayerComparer, store: LocalStore, base: Path
) -> None:
    assert plan([], [bind(base, "rw")]) == Plan(tree=str(base))
    descriptor = await comparer.compare(NS, [], [bind(base, "rw")], media_type=DOCKER_LAYER_GZIP)
    assert descriptor.media_type == DOCKER_LAYER_GZIP
    assert tar_names(await blob_tar(store, descriptor)) == [
        "etc/",
        "etc/gone",
        "etc/hosts",
        "opt/",
        "opt/app/",
        "opt/app/old",
    ]


async def test_zstd_layers(comparer: LayerComparer, store: LocalStore, base: Path) -> None:
    import zstandard

    descriptor = await comparer.compare(NS, [], [bind(base)], media_type=LAYER_ZSTD)
    blob = await read_blob(store, NS, descriptor.digest)
    tar = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    info = await store.info(NS, descriptor.digest)
    assert info.labels[UNCOMPRESSED_LABEL] == sha256(tar)


async def test_the_same_tree_twice_is_the_same_blob(
    comparer: LayerComparer, store: LocalStore, base: Path
) -> None:
    first = await comparer.compare(NS, [], [bind(base)], ref="layer-ref")
    second = await comparer.compare(NS, [], [bind(base)], ref="layer-ref")
    assert first == second
    assert [info.digest async for info in store.walk(NS)] == [first.digest]
    assert await store.list_statuses(NS) == []


async def test_an_unknown_media_type_is_invalid(comparer: LayerComparer, base: Path) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="application/x-zip"):
        await comparer.compare(NS, [], [bind(base)], media_type="application/x-zip")


async def test_a_missing_tree_is_not_found_and_leaves_nothing(
    comparer: LayerComparer, store: LocalStore, tmp_path: Path, work_dir: Path
) -> None:
    with pytest.raises(errdefs.NotFound, match="missing"):
        await comparer.compare(NS, [], [bind(tmp_path / "missing")])
    assert os.listdir(work_dir) == []
    assert await store.list_statuses(NS) == []


@pytest.fixture
def big(tmp_path: Path) -> Path:
    root = tmp_path / "big"
    root.mkdir()
    for index in range(64):
        (root / f"f{index}").write_bytes(os.urandom(1 << 20))
    return root


def started(work_dir: Path) -> bool:
    return work_dir.exists() and bool(os.listdir(work_dir))


async def test_a_cancelled_compare_stops_its_thread_and_cleans_up(
    comparer: LayerComparer, big: Path, work_dir: Path
) -> None:
    task = asyncio.create_task(comparer.compare(NS, [], [bind(big)]))
    while not started(work_dir):
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert os.listdir(work_dir) == []


def test_plans() -> None:
    a, b, u, w = (Path(f"/l/{x}") for x in "abuw")
    stacked = overlay([a, b], u, w)
    view = Mount(type="overlay", source="overlay", options=(f"lowerdir={a}:{b}",))
    active_lower = overlay([b], a, w)
    assert plan([view], [stacked]) == Plan(upperdir=str(u), lowerdirs=(str(a), str(b)))
    assert plan([active_lower], [stacked]) == Plan(upperdir=str(u), lowerdirs=(str(a), str(b)))
    assert plan([bind(a)], [overlay([a], u, w)]) == Plan(upperdir=str(u), lowerdirs=(str(a),))
    assert plan([bind(Path("/l/a/"))], [overlay([a], u, w)]).upperdir == str(u)
    assert plan([bind(b)], [overlay([a], u, w)]) == Plan()
    assert plan([], [overlay([a], u, w)]) == Plan()
    assert plan([bind(a)], [stacked]) == Plan()
    assert plan([bind(a), bind(b)], [stacked]) == Plan()
    assert plan([view], [stacked, bind(a)]) == Plan()
    metacopy = Mount(type="overlay", source="overlay", options=(*stacked.options, "metacopy=on"))
    assert plan([view], [metacopy]) == Plan()
    assert plan([], [bind(a)]) == Plan(tree=str(a))
    assert plan([bind(b)], [bind(a)]) == Plan()
    assert plan([], [Mount(type="ext4", source="/dev/vdb")]) == Plan()


def test_read_only_mounts() -> None:
    a, b, u, w = (Path(f"/l/{x}") for x in "abuw")
    assert read_only([overlay([a, b], u, w), bind(a, "rw")]) == [
        Mount(
            type="overlay", source="overlay", options=("index=off", f"lowerdir={u}:{a}:{b}", "ro")
        ),
        Mount(type="bind", source=str(a), options=("rbind", "ro")),
    ]


@pytest.fixture
def no_leftover_mounts(tmp_path: Path) -> Iterator[None]:
    yield
    with open("/proc/self/mountinfo") as mounts:
        assert str(tmp_path) not in mounts.read()


@pytest.mark.root
@pytest.mark.usefixtures("no_leftover_mounts")
async def test_no_mount_is_left_behind(
    comparer: LayerComparer, layers: Layers, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    lower = [Mount(type="overlay", source="overlay", options=(f"lowerdir={layers.lower}:{empty}",))]
    await comparer.compare(NS, lower, [layers.mount])


def test_the_comparer_speaks_the_port(comparer: LayerComparer) -> None:
    port: Comparer = comparer  # checked by mypy
    assert port is comparer
