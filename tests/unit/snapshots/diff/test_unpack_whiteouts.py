"""Whiteouts and opaque directories: deleted in a whole tree, overlayfs markers in an upper."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from unpack_tars import directory, file, symlink, tar_bytes, tree, unpack_bytes

from flotilla.snapshots.diff.unpack import Whiteouts

pytestmark = pytest.mark.root


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    """A tree as earlier layers left it."""
    root = tmp_path / "root"
    for path in ("dir/a", "dir/b", "dir/sub/c", "top", "keep/k"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    (root / "link").symlink_to("dir")
    return root


def is_whiteout(path: Path) -> bool:
    info = path.lstat()
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def test_delete_mode_removes_what_markers_name(lower: Path) -> None:
    data = tar_bytes(
        directory("dir"),
        file("dir/.wh.a"),
        file("dir/.wh.sub"),
        file(".wh.top"),
        file(".wh.link"),  # the symlink itself, not what it points to
        file(".wh.never-existed"),
        file("nowhere/.wh.x"),  # no directory: nothing to delete, nothing made
    )
    unpack_bytes(data, lower)
    assert sorted(tree(lower)) == ["dir", "dir/b", "keep", "keep/k"]


@pytest.mark.parametrize("marker_last", [False, True])
def test_delete_mode_opaque_keeps_only_this_layers_entries(lower: Path, marker_last: bool) -> None:
    entries = [
        file("dir/new", b"new"),
        directory("dir/sub"),
        file("dir/sub/d", b"d"),
        file("dir/deep/er/e", b"e"),  # parents made on the way, not listed
    ]
    marker = file("dir/.wh..wh..opq")
    ordered = (
        [directory("dir"), *entries, marker]
        if marker_last
        else [directory("dir"), marker, *entries]
    )
    unpack_bytes(tar_bytes(*ordered), lower)
    assert sorted(tree(lower)) == [
        "dir",
        "dir/deep",
        "dir/deep/er",
        "dir/deep/er/e",
        "dir/new",
        "dir/sub",
        "dir/sub/d",
        "keep",
        "keep/k",
        "link",
        "top",
    ]


def test_delete_mode_opaque_at_the_root(lower: Path) -> None:
    unpack_bytes(tar_bytes(file("fresh", b"f"), file(".wh..wh..opq")), lower)
    assert sorted(tree(lower)) == ["fresh"]


def test_aufs_metadata_is_skipped(lower: Path, tmp_path: Path) -> None:
    data = tar_bytes(
        directory(".wh..wh.plnk"),
        file(".wh..wh.plnk/123.456", b"x"),
        file(".wh..wh.aufs"),
        file("dir/.wh..wh.orph"),
    )
    for whiteouts in Whiteouts:
        before = tree(lower)
        unpack_bytes(data, lower, whiteouts)
        assert tree(lower) == before


def test_overlay_mode_writes_overlayfs_markers(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    data = tar_bytes(
        directory("dir"),
        file("dir/.wh.a", uid=1000, gid=1000),
        file(".wh.top"),
        file("made/.wh.x"),  # its directory is made: the marker must be somewhere
        directory("opaque"),
        file("opaque/new", b"n"),
        file("opaque/.wh..wh..opq"),
        file("late/child", b"c"),
        file("late/.wh..wh..opq"),
    )
    unpack_bytes(data, upper, Whiteouts.OVERLAY)
    for marker in ("dir/a", "top", "made/x"):
        assert is_whiteout(upper / marker)
    assert (upper / "dir/a").lstat().st_uid == 1000
    assert sorted(tree(upper)) == [
        "dir",
        "dir/a",
        "late",
        "late/child",
        "made",
        "made/x",
        "opaque",
        "opaque/new",
        "top",
    ]
    for opaque in ("opaque", "late"):
        assert os.getxattr(upper / opaque, "trusted.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(upper / "dir")


def test_overlay_mode_replaces_an_entry_with_its_whiteout(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d/gone").write_text("x")
    unpack_bytes(tar_bytes(file("d/.wh.gone")), upper, Whiteouts.OVERLAY)
    assert is_whiteout(upper / "d/gone")


def test_overlay_mode_drops_forged_overlay_attributes(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    pax = {
        "SCHILY.xattr.trusted.overlay.redirect": "/elsewhere",
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.user.kept": "1",
    }
    unpack_bytes(tar_bytes(directory("d", pax_headers=pax)), upper, Whiteouts.OVERLAY)
    assert os.listxattr(upper / "d") == ["user.kept"]


def test_whiteouts_follow_symlinks_that_stay_inside(lower: Path) -> None:
    unpack_bytes(tar_bytes(file("link/.wh.b")), lower)
    assert not (lower / "dir/b").exists()
    assert (lower / "link").is_symlink()


def test_a_symlinked_opaque_directory_keeps_what_came_through_the_link(lower: Path) -> None:
    unpack_bytes(tar_bytes(file("link/new", b"n"), file("dir/.wh..wh..opq")), lower)
    assert sorted(p.name for p in (lower / "dir").iterdir()) == ["new"]


@pytest.mark.parametrize(
    ("whiteouts", "expected"), [(Whiteouts.DELETE, []), (Whiteouts.OVERLAY, ["d", "d/l"])]
)
def test_markers_are_never_written_as_themselves(
    tmp_path: Path, whiteouts: Whiteouts, expected: list[str]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    unpack_bytes(tar_bytes(file("d/.wh..wh..opq"), symlink("d/.wh.l", "x")), root, whiteouts)
    assert sorted(tree(root)) == expected
