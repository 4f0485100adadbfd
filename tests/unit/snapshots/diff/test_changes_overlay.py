"""The overlay fast path: changes read from a real overlay's upper directory alone."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flotilla.common.mounts import Mount, mount_all, unmount
from flotilla.snapshots.diff.changes import Kind, UnsupportedUpper, double_walk, overlay_changes

pytestmark = pytest.mark.root


@dataclass
class Overlay:
    lower: Path
    upper: Path
    work: Path
    merged: Path


@pytest.fixture
def overlay(tmp_path: Path) -> Iterator[Overlay]:
    dirs = Overlay(*(tmp_path / name for name in ("lower", "upper", "work", "merged")))
    for directory in (dirs.lower, dirs.upper, dirs.work, dirs.merged):
        directory.mkdir()
    (dirs.lower / "gone").write_bytes(b"deleted through the overlay")
    (dirs.lower / "edited").write_bytes(b"before")
    (dirs.lower / "kept").write_bytes(b"kept")
    (dirs.lower / "remade").mkdir()
    (dirs.lower / "remade" / "old").write_bytes(b"hidden by the opaque directory")
    (dirs.lower / "tree" / "sub").mkdir(parents=True)
    (dirs.lower / "tree" / "sub" / "leaf").write_bytes(b"leaf")
    options = (f"lowerdir={dirs.lower}", f"upperdir={dirs.upper}", f"workdir={dirs.work}")
    mount_all([Mount(type="overlay", source="overlay", options=options)], dirs.merged)
    try:
        yield dirs
    finally:
        unmount(dirs.merged)


def make_changes(merged: Path) -> None:
    (merged / "gone").unlink()
    shutil.rmtree(merged / "remade")
    (merged / "remade").mkdir()
    (merged / "remade" / "new").write_bytes(b"new")
    (merged / "edited").write_bytes(b"after, longer")
    (merged / "tree" / "sub" / "leaf").unlink()
    (merged / "added").write_bytes(b"added")


def test_changes_from_the_upper_directory(overlay: Overlay) -> None:
    make_changes(overlay.merged)
    unmount(overlay.merged)
    found = list(overlay_changes(overlay.upper, [overlay.lower]))
    assert [(c.kind, c.path, c.opaque) for c in found] == [
        (Kind.ADD, "added", False),
        (Kind.MODIFY, "edited", False),
        (Kind.DELETE, "gone", False),
        (Kind.MODIFY, "remade", True),
        (Kind.ADD, "remade/new", False),
        (Kind.MODIFY, "tree", False),
        (Kind.MODIFY, "tree/sub", False),
        (Kind.DELETE, "tree/sub/leaf", False),
    ]
    assert all(c.stat is not None for c in found if c.kind is not Kind.DELETE)


def test_the_double_walk_of_the_merged_tree_names_each_child_instead(overlay: Overlay) -> None:
    make_changes(overlay.merged)
    found = [(c.kind, c.path) for c in double_walk(overlay.lower, overlay.merged)]
    # No opaque marker: the remade directory's old children are deleted one by one, and
    # directories whose metadata did not change are not reported.
    assert found == [
        (Kind.ADD, "added"),
        (Kind.MODIFY, "edited"),
        (Kind.DELETE, "gone"),
        (Kind.ADD, "remade/new"),
        (Kind.DELETE, "remade/old"),
        (Kind.DELETE, "tree/sub/leaf"),
    ]


def test_below_a_new_or_an_opaque_directory_everything_is_added(tmp_path: Path) -> None:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    for root in (upper, lower):
        (root / "opaque" / "deeper").mkdir(parents=True)
    (upper / "new" / "deeper").mkdir(parents=True)
    (upper / "new" / "deeper" / "file").write_bytes(b"x")
    (upper / "opaque" / "deeper" / "file").write_bytes(b"x")
    (lower / "opaque" / "deeper" / "file").write_bytes(b"hidden")
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    changes = overlay_changes(upper, [tmp_path / "missing", lower])
    assert [(c.kind, c.path, c.opaque) for c in changes] == [
        (Kind.ADD, "new", False),
        (Kind.ADD, "new/deeper", False),
        (Kind.ADD, "new/deeper/file", False),
        (Kind.MODIFY, "opaque", True),
        (Kind.ADD, "opaque/deeper", False),
        (Kind.ADD, "opaque/deeper/file", False),
    ]


def test_a_whiteout_device_is_a_deletion_and_overlay_xattrs_stay_out(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "dir").mkdir()
    os.setxattr(upper / "dir", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "dir", "trusted.overlay.impure", b"y")
    found = list(overlay_changes(upper))
    assert [(c.kind, c.path, c.opaque) for c in found] == [
        (Kind.ADD, "dir", True),
        (Kind.DELETE, "gone", False),
    ]


@pytest.mark.parametrize("mark", ["trusted.overlay.redirect", "trusted.overlay.metacopy"])
def test_a_redirect_or_a_metacopy_needs_the_double_walk(tmp_path: Path, mark: str) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", mark, b"/elsewhere")
    with pytest.raises(UnsupportedUpper):
        list(overlay_changes(upper))
