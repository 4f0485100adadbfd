"""The double walk (containerd's fs.Changes) on real trees: every kind of difference."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from flotilla.snapshots.diff.changes import Kind, double_walk

WHOLE = 1_700_000_000 * 1_000_000_000  # a time with zero nanoseconds, as a tar leaves it


def write(path: Path, data: bytes, *, mtime_ns: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def clone(lower: Path, upper: Path) -> None:
    """An exact copy (times, owners, xattrs, hard links), as an unpacked parent would be."""
    subprocess.run(["cp", "-a", f"{lower}/.", str(upper)], check=True)


def changes(lower: Path | None, upper: Path) -> list[tuple[str, str]]:
    return [(change.kind.value, change.path) for change in double_walk(lower, upper)]


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    root = tmp_path / "lower"
    root.mkdir()
    write(root / "same", b"x")
    write(root / "dir" / "inner", b"inner")
    write(root / "dir" / "kept", b"kept")
    return root


@pytest.fixture
def upper(tmp_path: Path, lower: Path) -> Path:
    root = tmp_path / "upper"
    root.mkdir()
    clone(lower, root)
    return root


def test_identical_trees_have_no_changes(lower: Path, upper: Path) -> None:
    assert changes(lower, upper) == []


def test_a_new_file_is_added(lower: Path, upper: Path) -> None:
    write(upper / "new", b"new")
    write(upper / "dir" / "new", b"new")
    assert changes(lower, upper) == [("add", "dir/new"), ("add", "new")]


def test_a_changed_file_is_modified_its_unchanged_directory_is_not(
    lower: Path, upper: Path
) -> None:
    write(upper / "dir" / "inner", b"other content")
    assert changes(lower, upper) == [("modify", "dir/inner")]


def test_same_size_other_content_with_whole_second_times_is_modified(
    lower: Path, upper: Path
) -> None:
    write(lower / "data", b"aaaa", mtime_ns=WHOLE)
    write(upper / "data", b"bbbb", mtime_ns=WHOLE)
    write(lower / "equal", b"cccc", mtime_ns=WHOLE)
    write(upper / "equal", b"cccc", mtime_ns=WHOLE)
    assert changes(lower, upper) == [("modify", "data")]


def test_same_size_and_time_with_nanoseconds_is_trusted_as_unchanged(
    lower: Path, upper: Path
) -> None:
    # As containerd's sameFile: a time with nanoseconds was not truncated by a tar, so
    # equal times and sizes mean the same file without reading it.
    write(lower / "data", b"aaaa", mtime_ns=WHOLE + 123)
    write(upper / "data", b"bbbb", mtime_ns=WHOLE + 123)
    assert changes(lower, upper) == []


def test_a_new_time_is_a_modification(lower: Path, upper: Path) -> None:
    os.utime(upper / "same", ns=(WHOLE, WHOLE))
    assert changes(lower, upper) == [("modify", "same")]


def test_chmod_and_chown_are_modifications(lower: Path, upper: Path) -> None:
    os.chmod(upper / "same", 0o600)
    os.chown(upper / "dir" / "kept", 1000, 1001)
    assert changes(lower, upper) == [("modify", "dir/kept"), ("modify", "same")]


def test_a_directory_with_other_metadata_is_modified(lower: Path, upper: Path) -> None:
    os.chmod(upper / "dir", 0o700)
    assert changes(lower, upper) == [("modify", "dir")]


def test_an_xattr_change_is_a_modification(lower: Path, upper: Path) -> None:
    os.setxattr(lower / "same", "user.note", b"one")
    os.setxattr(upper / "same", "user.note", b"two")
    os.setxattr(upper / "dir" / "kept", "user.new", b"x")
    assert changes(lower, upper) == [("modify", "dir/kept"), ("modify", "same")]


def test_a_retargeted_symlink_is_modified(lower: Path, upper: Path) -> None:
    os.symlink("target-1", lower / "link")
    os.symlink("target-2", upper / "link")  # same length, maybe the same time
    os.symlink("same", lower / "kept-link")
    os.symlink("same", upper / "kept-link")
    for root in (lower, upper):
        os.utime(root / "kept-link", ns=(WHOLE, WHOLE), follow_symlinks=False)
    assert changes(lower, upper) == [("modify", "link")]


def test_a_deleted_file_and_directory_are_deleted_without_their_children(
    lower: Path, upper: Path
) -> None:
    write(lower / "gone", b"x")
    write(lower / "olddir" / "sub" / "deep", b"x")
    write(lower / "olddir" / "child", b"x")
    assert changes(lower, upper) == [("delete", "gone"), ("delete", "olddir")]


def test_a_file_replaced_by_a_directory(lower: Path, upper: Path) -> None:
    write(lower / "node", b"file")
    write(upper / "node" / "child", b"x")
    assert changes(lower, upper) == [("modify", "node"), ("add", "node/child")]


def test_a_directory_replaced_by_a_file(lower: Path, upper: Path) -> None:
    write(lower / "node" / "child", b"x")
    write(upper / "node", b"file")
    assert changes(lower, upper) == [("modify", "node")]


def test_a_new_hard_link_reports_its_unchanged_partner(lower: Path, upper: Path) -> None:
    os.link(upper / "same", upper / "twin")
    found = list(double_walk(lower, upper))
    assert [(c.kind, c.path) for c in found] == [(Kind.UNMODIFIED, "same"), (Kind.ADD, "twin")]
    assert found[0].stat is not None
    assert found[1].stat is not None
    assert found[0].stat.st_ino == found[1].stat.st_ino


def test_devices_and_fifos(lower: Path, upper: Path) -> None:
    os.mknod(lower / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.mknod(upper / "disk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    os.mkfifo(upper / "fifo", 0o644)
    os.mkfifo(lower / "pipe", 0o644)
    os.mknod(upper / "pipe", stat.S_IFCHR | 0o644, os.makedev(1, 3))  # a fifo became a device
    assert changes(lower, upper) == [
        ("add", "disk"),
        ("add", "fifo"),
        ("modify", "null"),
        ("modify", "pipe"),
    ]


def test_paths_come_in_walk_order_a_directory_before_its_children(lower: Path, upper: Path) -> None:
    # Byte order puts "a.txt" before "a/b"; the walk visits a/ and its children first.
    write(upper / "a" / "b", b"x")
    write(upper / "a.txt", b"x")
    write(upper / "a-z", b"x")
    assert changes(lower, upper) == [
        ("add", "a"),
        ("add", "a/b"),
        ("add", "a-z"),
        ("add", "a.txt"),
    ]


def test_no_lower_tree_adds_everything(upper: Path) -> None:
    assert changes(None, upper) == [
        ("add", "dir"),
        ("add", "dir/inner"),
        ("add", "dir/kept"),
        ("add", "same"),
    ]


def test_an_added_change_carries_the_upper_stat(lower: Path, upper: Path) -> None:
    write(upper / "new", b"12345")
    (change,) = double_walk(lower, upper)
    assert change.stat is not None
    assert change.stat.st_size == 5
    deleted = lower / "gone"
    write(deleted, b"")
    (upper / "new").unlink()
    (change,) = double_walk(lower, upper)
    assert (change.kind, change.stat) == (Kind.DELETE, None)


def test_names_that_are_not_utf8(lower: Path, upper: Path) -> None:
    name = os.fsdecode(b"caf\xe9")
    write(upper / name, b"x")
    assert changes(lower, upper) == [("add", name)]


def test_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    upper = tmp_path / "deep"
    path = str(upper)
    os.mkdir(path)
    for _ in range(1200):
        path += "/d"
        os.mkdir(path)  # pathlib's mkdir(parents=True) recurses itself
    try:
        found = changes(None, upper)
    finally:
        # pytest's own clean-up of old temporary directories recurses: leave nothing this deep.
        subprocess.run(["rm", "-rf", str(upper)], check=True)
    assert len(found) == 1200
    assert found[-1] == ("add", "/".join(["d"] * 1200))
