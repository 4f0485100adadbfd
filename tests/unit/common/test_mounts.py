"""containerd's Mount records mounted for real: binds, read-only binds, overlays past a page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, lower_dirs, mount_all, option_value, temp_mount, unmount

pytestmark = pytest.mark.root


def test_read_only_bind(tmp_path: Path) -> None:
    """``ro`` on a bind takes a second, read-only remount; the source stays writable."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "f").write_bytes(b"x")
    with temp_mount([Mount(type="bind", source=str(source), options=("ro", "rbind"))]) as root:
        assert (root / "f").read_bytes() == b"x"
        with pytest.raises(OSError, match="Read-only"):
            (root / "g").write_bytes(b"no")
    (source / "g").write_bytes(b"yes")


def test_overlay_options_past_a_page(tmp_path: Path) -> None:
    """140 lower directories of absolute paths exceed a page; the mount still works."""
    layers = tmp_path / "a-rather-long-directory-name-for-layers" / "snapshots"
    lowers = []
    for index in range(140):
        layer = layers / str(index) / "fs"
        layer.mkdir(parents=True)
        (layer / f"f{index}").write_bytes(b"x")
        lowers.append(str(layer))
    upper, work = layers / "top" / "fs", layers / "top" / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    options = (f"lowerdir={':'.join(lowers)}", f"upperdir={upper}", f"workdir={work}")
    assert len(",".join(options)) > os.sysconf("SC_PAGE_SIZE")
    overlay = Mount(type="overlay", source="overlay", options=options)
    assert len(lower_dirs(overlay)) == 140
    assert option_value(overlay, "upperdir") == str(upper)
    with temp_mount([overlay]) as root:
        assert len(os.listdir(root)) == 140
        (root / "new").write_bytes(b"n")
    assert (upper / "new").read_bytes() == b"n"


def test_failed_mount_undoes_earlier_ones(tmp_path: Path) -> None:
    """A failing mount unmounts what went before it; the error names the target."""
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    mounts = [
        Mount(type="bind", source=str(source), options=("rbind",)),
        Mount(type="bind", source=str(tmp_path / "missing"), target="sub", options=("rbind",)),
    ]
    with pytest.raises(errdefs.NotFound, match="target"):
        mount_all(mounts, target)
    assert not os.path.ismount(target)


def test_unmount_of_nothing_is_fine(tmp_path: Path) -> None:
    """Unmounting a directory nothing is mounted on is no error."""
    unmount(tmp_path)


def test_nested_mounts_come_off_in_reverse(tmp_path: Path) -> None:
    """A mount at a target inside an earlier one is unmounted first: nothing stays behind."""
    outer, inner = tmp_path / "outer", tmp_path / "inner"
    (outer / "sub").mkdir(parents=True)
    inner.mkdir()
    (inner / "deep").write_bytes(b"d")
    mounts = [
        Mount(type="bind", source=str(outer), options=("rbind",)),
        Mount(type="bind", source=str(inner), target="sub", options=("ro", "rbind")),
    ]
    with temp_mount(mounts) as root:
        assert (root / "sub" / "deep").read_bytes() == b"d"
        mounted_at = root
    assert not mounted_at.exists()
    assert not os.path.ismount(outer / "sub")
