"""apply(diff(x)) == x: layers the comparer writes, unpacked by the applier, rebuild the tree.

Trees are compared path by path: type, mode, owner, size and content, symlink target,
device number, xattrs, hard-link group, and the modification time of everything but
directories (whole seconds: a layer carries no more, as in containerd).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from flotilla.common.mounts import Mount, mount_all, unmount
from flotilla.content.local import LocalStore
from flotilla.content.store import Info
from flotilla.snapshots.diff.apply import LayerApplier
from flotilla.snapshots.diff.compare import LayerComparer, plan
from flotilla.snapshots.diff.differ import LAYER_GZIP, LAYER_TAR, LAYER_ZSTD, UNCOMPRESSED_LABEL
from flotilla.testkit.events import RecordingPublisher

pytestmark = pytest.mark.root

NS = "unit"
Entry = tuple[object, ...]


def manifest(root: Path) -> dict[str, Entry]:
    """Every path under ``root`` (the root itself left out) and what a layer must keep of it."""
    entries: dict[str, Entry] = {}
    links: dict[tuple[int, int], list[str]] = defaultdict(list)
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            rel = os.path.relpath(path, root)
            info = os.lstat(path)
            entries[rel] = describe(path, info)
            if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
                links[(info.st_dev, info.st_ino)].append(rel)
    for group in links.values():
        # One path in the tree is no group, whatever the link count says (an overlay
        # reports a lower file's count from the lower directory).
        for rel in group if len(group) > 1 else ():
            entries[rel] = (*entries[rel], ("linked", sorted(group)))
    return entries


def describe(path: str, info: os.stat_result) -> Entry:
    kind = stat.S_IFMT(info.st_mode)
    content = ""
    if stat.S_ISREG(info.st_mode):
        with open(path, "rb") as file:
            content = hashlib.file_digest(file, "sha256").hexdigest()
    target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else ""
    device = info.st_rdev if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else 0
    xattrs = {
        name: os.getxattr(path, name, follow_symlinks=False)
        for name in sorted(os.listxattr(path, follow_symlinks=False))
    }
    mtime = None if stat.S_ISDIR(info.st_mode) else info.st_mtime_ns // 1_000_000_000
    owner = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    return (
        kind,
        owner,
        info.st_size if kind == stat.S_IFREG else 0,
        content,
        target,
        device,
        xattrs,
        mtime,
    )


def assert_same_tree(expected: Path, actual: Path) -> None:
    want, got = manifest(expected), manifest(actual)
    assert sorted(got) == sorted(want)
    differing = {path: (want[path], got[path]) for path in want if want[path] != got[path]}
    assert differing == {}


def write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def make_parent(root: Path) -> None:
    write(root / "etc" / "hosts", b"127.0.0.1 localhost\n")
    write(root / "etc" / "gone", b"deleted by the child")
    write(root / "etc" / "shadow", b"secret", 0o600)
    os.chown(root / "etc" / "shadow", 0, 42)
    write(root / "usr" / "bin" / "tool", os.urandom(3 << 20), 0o755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool-alias")
    os.symlink("tool", root / "usr" / "bin" / "link")
    write(root / "var" / "lib" / "old" / "a", b"a")
    write(root / "var" / "lib" / "old" / "sub" / "b", b"b")
    write(root / "becomes-dir", b"file")
    write(root / "becomes-file" / "child", b"x")
    write(root / "opt" / "remade" / "hidden", b"hidden")
    os.setxattr(root / "etc" / "hosts", "user.origin", b"parent")


def change(root: Path) -> None:
    """Every kind of change, made in a tree (a copy of the parent, or an overlay's merged view)."""
    (root / "etc" / "gone").unlink()
    write(root / "etc" / "hosts", b"10.0.0.1 other\n")
    os.setxattr(root / "etc" / "hosts", "user.origin", b"child")
    os.setxattr(root / "etc" / "hosts", "trusted.note", b"\x00\xff")
    os.chmod(root / "etc" / "shadow", 0o640)
    os.chown(root / "etc" / "shadow", 7, 8)
    os.remove(root / "usr" / "bin" / "link")
    os.symlink("tool-alias", root / "usr" / "bin" / "link")
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool-third")
    shutil.rmtree(root / "var" / "lib" / "old")
    (root / "becomes-dir").unlink()
    write(root / "becomes-dir" / "inside", b"inside")
    shutil.rmtree(root / "becomes-file")
    write(root / "becomes-file", b"now a file")
    shutil.rmtree(root / "opt" / "remade")
    write(root / "opt" / "remade" / "fresh", b"fresh")
    write(root / "new" / "empty", b"")
    write(root / "new" / "setuid", b"#!/bin/sh\n", 0o4755)
    write(root / "new" / ("long-" * 30), b"long name")
    write(root / "new" / os.fsdecode(b"caf\xe9"), b"latin-1 name")
    os.link(root / "new" / "setuid", root / "new" / "setuid-link")
    os.mknod(root / "new" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "new" / "loop", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.mkfifo(root / "new" / "fifo", 0o600)
    os.symlink("/absolute/dangling", root / "new" / "dangling")
    deep = root / "new" / "deep"
    deep.mkdir()
    for index in range(30):
        deep = deep / f"level-{index}"
        deep.mkdir(mode=0o750)
    write(deep / "bottom", b"bottom")
    os.chown(root / "new", 1000, 1000)


def clone(source: Path, target: Path) -> None:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def bind(directory: Path, mode: str = "rw") -> Mount:
    return Mount(type="bind", source=str(directory), options=(mode, "rbind"))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    async with await LocalStore.open(tmp_path / "content", RecordingPublisher()) as opened:
        yield opened


@pytest.fixture
def comparer(store: LocalStore, tmp_path: Path) -> LayerComparer:
    return LayerComparer(store, tmp_path / "diff-work")


@pytest.fixture
def applier(store: LocalStore, tmp_path: Path) -> LayerApplier:
    return LayerApplier(store.blob_path, work_dir=tmp_path / "apply-work")


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    root = tmp_path / "parent"
    root.mkdir()
    make_parent(root)
    return root


async def diff_id_of(store: LocalStore, digest: str) -> str:
    info: Info = await store.info(NS, digest)
    return info.labels[UNCOMPRESSED_LABEL]


# Trees are made, copied and read in worker threads: the event loop is never held.
thread = asyncio.to_thread


def changed_copy(parent: Path, child: Path) -> None:
    clone(parent, child)
    change(child)


@pytest.mark.parametrize("media_type", [LAYER_GZIP, LAYER_TAR, LAYER_ZSTD])
async def test_two_trees_walked_side_by_side(
    comparer: LayerComparer,
    applier: LayerApplier,
    store: LocalStore,
    parent: Path,
    tmp_path: Path,
    media_type: str,
) -> None:
    child, target = tmp_path / "child", tmp_path / "target"
    await thread(changed_copy, parent, child)
    layer = await comparer.compare(NS, [bind(parent, "ro")], [bind(child)], media_type=media_type)
    await thread(clone, parent, target)
    diff_id = await diff_id_of(store, layer.digest)
    unpacked = await applier.apply(NS, layer, [bind(target)], diff_id=diff_id)
    assert unpacked.digest == diff_id
    await thread(assert_same_tree, child, target)


async def test_a_whole_tree_onto_an_empty_one(
    comparer: LayerComparer, applier: LayerApplier, parent: Path, tmp_path: Path
) -> None:
    await thread(change, parent)
    layer = await comparer.compare(NS, [], [bind(parent, "ro")])
    target = tmp_path / "target"
    target.mkdir()
    await applier.apply(NS, layer, [bind(target)])
    await thread(assert_same_tree, parent, target)


class Overlay:
    """An overlay on ``lowers`` with a fresh upper directory, mounted while work runs in it."""

    def __init__(self, base: Path, lowers: list[Path], *extra: str) -> None:
        self.upper, self.work, self.merged = (base / x for x in ("upper", "work", "merged"))
        for directory in (self.upper, self.work, self.merged):
            directory.mkdir(parents=True)
        options = (
            "index=off",
            f"workdir={self.work}",
            f"upperdir={self.upper}",
            f"lowerdir={':'.join(str(x) for x in lowers)}",
        )
        self.mount = Mount(type="overlay", source="overlay", options=options)
        self._mounted = Mount(type="overlay", source="overlay", options=(*options, *extra))

    def run(self, work: Callable[[Path], None]) -> None:
        """``work(merged)`` with the overlay mounted (blocking)."""
        mount_all([self._mounted], self.merged)
        try:
            work(self.merged)
        finally:
            unmount(self.merged)


def copy_to(target: Path) -> Callable[[Path], None]:
    return lambda merged: clone(merged, target)


def change_and_copy(target: Path) -> Callable[[Path], None]:
    def work(merged: Path) -> None:
        change(merged)
        clone(merged, target)  # the child as the overlay shows it

    return work


async def test_an_overlay_layer_onto_a_copy_and_onto_an_overlay(
    comparer: LayerComparer, applier: LayerApplier, parent: Path, tmp_path: Path
) -> None:
    made = Overlay(tmp_path / "made", [parent])
    expected = tmp_path / "expected"
    await thread(made.run, change_and_copy(expected))
    assert plan([bind(parent, "ro")], [made.mount]).upperdir == str(made.upper)
    layer = await comparer.compare(NS, [bind(parent, "ro")], [made.mount])

    # Unpacked into a whole tree: whiteouts and opaque directories delete.
    copy = tmp_path / "copy"
    await thread(clone, parent, copy)
    await applier.apply(NS, layer, [bind(copy)])
    await thread(assert_same_tree, expected, copy)

    # Unpacked into another overlay's upper directory: overlay's own whiteouts.
    again = Overlay(tmp_path / "again", [parent])
    await applier.apply(NS, layer, [again.mount])
    await thread(again.run, lambda merged: assert_same_tree(expected, merged))


def second_change(merged: Path) -> None:
    shutil.rmtree(merged / "new" / "deep")
    write(merged / "etc" / "hosts", b"third\n")
    # A lower directory moved: copied and deleted (EXDEV without redirect_dir).
    shutil.move(merged / "becomes-dir", merged / "renamed-dir")


def view_of(lowers: list[Path]) -> list[Mount]:
    """A read-only view of snapshots, as the overlay snapshotter mounts one (nearest first)."""
    if len(lowers) == 1:
        return [bind(lowers[0], "ro")]
    stacked = ":".join(str(x) for x in reversed(lowers))
    return [Mount(type="overlay", source="overlay", options=(f"lowerdir={stacked}",))]


async def test_layers_stacked_on_layers(
    comparer: LayerComparer,
    applier: LayerApplier,
    store: LocalStore,
    parent: Path,
    tmp_path: Path,
) -> None:
    # Three snapshots as the overlay snapshotter makes them: each diffed by the fast path
    # against all its parents, and the chain unpacked again from scratch.
    lowers = [parent]
    layers = [await comparer.compare(NS, [], [bind(parent, "ro")])]
    for index, work in ((1, change), (2, second_change)):
        snapshot = Overlay(tmp_path / f"snapshot-{index}", list(reversed(lowers)))
        await thread(snapshot.run, work)
        assert plan(view_of(lowers), [snapshot.mount]).upperdir == str(snapshot.upper)
        layers.append(await comparer.compare(NS, view_of(lowers), [snapshot.mount]))
        lowers.append(snapshot.upper)
    expected, rebuilt = tmp_path / "expected", tmp_path / "rebuilt"
    await thread(Overlay(tmp_path / "final", list(reversed(lowers))).run, copy_to(expected))
    rebuilt.mkdir()
    for layer in layers:
        diff_id = await diff_id_of(store, layer.digest)
        await applier.apply(NS, layer, [bind(rebuilt)], diff_id=diff_id)
    await thread(assert_same_tree, expected, rebuilt)


def rename_and_copy(target: Path) -> Callable[[Path], None]:
    def work(merged: Path) -> None:
        (merged / "var" / "lib").rename(merged / "var" / "moved")
        clone(merged, target)

    return work


async def test_a_renamed_lower_directory_falls_back_to_the_double_walk(
    comparer: LayerComparer, applier: LayerApplier, parent: Path, tmp_path: Path
) -> None:
    # With redirect_dir=on, a lower directory renamed through the overlay is a redirect
    # in the upper directory: the fast path cannot read it, so both trees are walked.
    made = Overlay(tmp_path / "made", [parent], "redirect_dir=on")
    expected, copy = tmp_path / "expected", tmp_path / "copy"
    await thread(made.run, rename_and_copy(expected))
    assert os.getxattr(made.upper / "var" / "moved", "trusted.overlay.redirect")
    assert plan([bind(parent, "ro")], [made.mount]).upperdir  # chosen, then given up
    layer = await comparer.compare(NS, [bind(parent, "ro")], [made.mount])
    await thread(clone, parent, copy)
    await applier.apply(NS, layer, [bind(copy)])
    await thread(assert_same_tree, expected, copy)
