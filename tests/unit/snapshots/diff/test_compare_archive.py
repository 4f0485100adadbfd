"""Layer tars written from changes, read back with tarfile: entries, whiteouts, links, digests."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import struct
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
import zstandard

from flotilla.common import errdefs
from flotilla.snapshots.diff.archive import Header, Layer, write_layer
from flotilla.snapshots.diff.changes import Change, Kind, double_walk, overlay_changes

WHOLE = 1_700_000_000
# vfs_cap_data, revision 2, effective: cap_net_bind_service.
CAPABILITY = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def layer_of(changes: list[Change] | object, source: Path, compression: str = "none") -> bytes:
    out = io.BytesIO()
    write_layer(changes, source, out, compression=compression)  # type: ignore[arg-type]
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.getmembers()


def names(data: bytes) -> list[str]:
    return [m.name + ("/" if m.isdir() else "") for m in members(data)]


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    (lower / "etc" / "app").mkdir(parents=True)
    (lower / "etc" / "app" / "old.conf").write_bytes(b"old")
    (lower / "etc" / "app" / "kept.conf").write_bytes(b"kept")
    (lower / "bin").mkdir()
    (lower / "bin" / "tool").write_bytes(b"tool")
    (lower / "var" / "cache").mkdir(parents=True)
    (lower / "var" / "cache" / "a").write_bytes(b"a")
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    return lower, upper


def test_entries_of_every_kind(trees: tuple[Path, Path]) -> None:
    lower, upper = trees
    (upper / "etc" / "app" / "old.conf").unlink()
    (upper / "etc" / "app" / "new.conf").write_bytes(b"x" * 1000)
    os.chown(upper / "etc" / "app" / "new.conf", 1000, 1001)
    os.chmod(upper / "etc" / "app" / "new.conf", 0o4750)
    os.utime(upper / "etc" / "app" / "new.conf", ns=(0, WHOLE * 10**9 + 999_999_999))
    os.setxattr(upper / "etc" / "app" / "new.conf", "user.origin", b"test")
    os.setxattr(upper / "etc" / "app" / "new.conf", "security.capability", CAPABILITY)
    os.setxattr(upper / "etc" / "app" / "new.conf", "user.binary", b"\xff\x00\xfe")
    os.symlink("../etc/app/new.conf", upper / "bin" / "conf")
    os.link(upper / "bin" / "tool", upper / "bin" / "tool2")
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(upper / "fifo", 0o600)
    data = layer_of(list(double_walk(lower, upper)), upper)
    # Parents first, each once; the whiteout beside what it deletes; the unchanged
    # bin/tool comes in as the hard link target of the new bin/tool2.
    assert names(data) == [
        "bin/",
        "bin/conf",
        "bin/tool2",
        "bin/tool",
        "etc/",
        "etc/app/",
        "etc/app/new.conf",
        "etc/app/.wh.old.conf",
        "fifo",
        "null",
    ]
    by_name = {m.name: m for m in members(data)}
    conf = by_name["etc/app/new.conf"]
    assert (conf.size, conf.mode, conf.uid, conf.gid, conf.mtime) == (
        1000,
        0o4750,
        1000,
        1001,
        WHOLE,
    )
    assert conf.pax_headers["SCHILY.xattr.user.origin"] == "test"
    for name, value in (("security.capability", CAPABILITY), ("user.binary", b"\xff\x00\xfe")):
        raw = conf.pax_headers[f"SCHILY.xattr.{name}"]
        assert raw.encode("utf-8", "surrogateescape") == value
    assert (conf.uname, conf.gname) == ("", "")
    assert by_name["bin/conf"].issym()
    assert by_name["bin/conf"].linkname == "../etc/app/new.conf"
    assert by_name["bin/tool2"].isreg()
    assert by_name["bin/tool"].islnk()
    assert by_name["bin/tool"].linkname == "bin/tool2"
    assert by_name["null"].ischr()
    assert (by_name["null"].devmajor, by_name["null"].devminor) == (1, 3)
    assert by_name["fifo"].isfifo()
    whiteout = by_name["etc/app/.wh.old.conf"]
    assert (whiteout.isreg(), whiteout.size, whiteout.mode, whiteout.mtime) == (True, 0, 0, 0)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        file = archive.extractfile("etc/app/new.conf")
        assert file is not None
        assert file.read() == b"x" * 1000


def test_paths_of_one_inode_within_the_layer_are_hard_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "one").write_bytes(b"shared")
    os.link(root / "a" / "one", root / "two")
    os.link(root / "a" / "one", root / "three")
    found = members(layer_of(list(double_walk(None, root)), root))
    assert [(m.name, m.type, m.linkname, m.size) for m in found] == [
        ("a", tarfile.DIRTYPE, "", 0),
        ("a/one", tarfile.REGTYPE, "", 6),
        ("three", tarfile.LNKTYPE, "a/one", 0),
        ("two", tarfile.LNKTYPE, "a/one", 0),
    ]


def test_a_deletion_in_an_unchanged_directory_brings_its_parents(trees: tuple[Path, Path]) -> None:
    lower, upper = trees
    (upper / "var" / "cache" / "a").unlink()
    os.chmod(upper / "var", 0o711)
    data = layer_of(list(double_walk(lower, upper)), upper)
    assert names(data) == ["var/", "var/cache/", "var/cache/.wh.a"]
    assert members(data)[0].mode == 0o711


def test_an_opaque_directory_is_followed_by_its_marker(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "dir" / "sub").mkdir(parents=True)
    (upper / "dir" / "sub" / "file").write_bytes(b"x")
    os.setxattr(upper / "dir" / "sub", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "dir" / "sub", "user.kept", b"1")
    os.mknod(upper / "dir" / "gone", stat.S_IFCHR, os.makedev(0, 0))
    data = layer_of(overlay_changes(upper), upper)
    assert names(data) == [
        "dir/",
        "dir/.wh.gone",
        "dir/sub/",
        "dir/sub/.wh..wh..opq",
        "dir/sub/file",
    ]
    sub = members(data)[2]
    assert sub.pax_headers == {"SCHILY.xattr.user.kept": "1"}  # overlay's own xattrs stay out


def test_sockets_are_left_out(tmp_path: Path) -> None:
    import socket

    root = tmp_path / "root"
    root.mkdir()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        (root / "file").write_bytes(b"")
        assert names(layer_of(double_walk(None, root), root)) == ["file"]


def test_long_and_non_utf8_names(tmp_path: Path) -> None:
    root = tmp_path / "root"
    long_dir = root / ("d" * 150)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 200)).write_bytes(b"long")
    weird = os.fsdecode(b"caf\xe9")
    (root / weird).write_bytes(b"latin-1")
    os.symlink("t" * 300, root / "link")
    found = members(layer_of(double_walk(None, root), root))
    assert [m.name for m in found] == [weird, "d" * 150, f"{'d' * 150}/{'f' * 200}", "link"]
    assert found[3].linkname == "t" * 300


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_digests_and_sizes(trees: tuple[Path, Path], compression: str) -> None:
    lower, upper = trees
    (upper / "big").write_bytes(os.urandom(3 << 20) + b"tail")
    out = io.BytesIO()
    layer = write_layer(double_walk(lower, upper), upper, out, compression=compression)  # type: ignore[arg-type]
    blob = out.getvalue()
    if compression == "gzip":
        tar = gzip.decompress(blob)
    elif compression == "zstd":
        tar = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    else:
        tar = blob
    assert layer == Layer(sha256(blob), len(blob), sha256(tar), len(tar))
    assert tar.endswith(bytes(1024))
    assert len(tar) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        file = archive.extractfile("big")
        assert file is not None
        assert file.read() == (upper / "big").read_bytes()


def test_the_same_changes_make_the_same_bytes(trees: tuple[Path, Path]) -> None:
    lower, upper = trees
    (upper / "etc" / "app" / "old.conf").unlink()
    first = layer_of(double_walk(lower, upper), upper, "gzip")
    second = layer_of(double_walk(lower, upper), upper, "gzip")
    assert first == second


def test_a_file_that_shrank_while_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"12345678")
    info = os.lstat(tmp_path / "file")
    (tmp_path / "file").write_bytes(b"1234")
    with pytest.raises(errdefs.FailedPrecondition, match="shrank"):
        layer_of([Change(Kind.ADD, "file", info)], tmp_path)


def test_a_vanished_path_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"12345678")
    info = os.lstat(tmp_path / "file")
    (tmp_path / "file").unlink()
    with pytest.raises(errdefs.NotFound, match="file"):
        layer_of([Change(Kind.ADD, "file", info)], tmp_path)


def test_a_set_stop_event_cancels(trees: tuple[Path, Path]) -> None:
    upper = trees[1]
    stop = threading.Event()
    stop.set()
    with pytest.raises(errdefs.Canceled):
        write_layer(double_walk(None, upper), upper, io.BytesIO(), stop=stop)


@pytest.mark.parametrize(
    "header",
    [
        Header("etc/passwd", tarfile.REGTYPE, mode=0o644, size=1234, mtime=WHOLE),
        Header("etc", tarfile.DIRTYPE, mode=0o755, uid=0, gid=0, mtime=WHOLE),
        Header("bin/sh", tarfile.SYMTYPE, mode=0o777, linkname="dash", mtime=1),
        Header("bin/sh2", tarfile.LNKTYPE, mode=0o755, linkname="bin/sh", uid=7, gid=9),
        Header("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        Header("dev/sda", tarfile.BLKTYPE, mode=0o660, devmajor=259, devminor=65535),
        Header("run/fifo", tarfile.FIFOTYPE, mode=0o4755),
        Header("a/.wh.b", tarfile.REGTYPE),
        Header("x" * 100, tarfile.REGTYPE, size=8**11 - 1, mtime=8**11 - 1),
        Header("big", tarfile.REGTYPE, size=8**11, uid=8**7),
        Header("x" * 101, tarfile.DIRTYPE),
        Header("old", tarfile.REGTYPE, mtime=-1),
        Header(os.fsdecode(b"caf\xe9"), tarfile.REGTYPE),
        Header("attr", tarfile.REGTYPE, xattrs={"user.a": b"1"}),
    ],
)
def test_headers_are_encoded_as_tarfile_encodes_them(header: Header) -> None:
    info = tarfile.TarInfo(header.name)
    info.type, info.mode, info.uid, info.gid = header.type, header.mode, header.uid, header.gid
    info.size, info.mtime, info.linkname = header.size, header.mtime, header.linkname
    info.devmajor, info.devminor = header.devmajor, header.devminor
    info.uname = info.gname = ""
    info.pax_headers = {f"SCHILY.xattr.{k}": v.decode() for k, v in header.xattrs.items()}
    assert header.encode() == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
