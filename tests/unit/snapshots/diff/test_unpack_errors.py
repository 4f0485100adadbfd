"""Bad layers: corrupt or truncated streams, lying headers, bombs, full disks, a wrong diffID.

Each fails with its errdefs class and leaves the root as it was: emptied again when it was
empty, its earlier contents restored (created entries removed, merged directories' metadata
put back) when it was not.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from isal import igzip
from unpack_tars import bare, directory, file, sha256, tar_bytes, tree, unpack_bytes

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, mount_all, unmount
from flotilla.snapshots.diff.compression import open_tar_stream
from flotilla.snapshots.diff.differ import (
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    LAYER_GZIP,
    LAYER_TAR,
    LAYER_ZSTD,
)
from flotilla.snapshots.diff.unpack import Unpacked, Whiteouts, unpack

pytestmark = pytest.mark.root
MIB = 1 << 20


@pytest.fixture(params=["empty", "populated"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    if request.param == "populated":
        (path / "etc").mkdir()
        (path / "etc/passwd").write_text("root:x:0:0")
        (path / "usr/lib").mkdir(parents=True)
        (path / "usr/lib/libc.so").write_bytes(b"libc")
    return path


def layer_tar() -> bytes:
    return tar_bytes(
        directory("etc", mode=0o700, uid=5),
        file("etc/new", b"new" * 1000),
        file("usr/lib/libz.so", b"z" * 300_000),
        directory("var/cache", mode=0o700),
        file("var/cache/x", b"x"),
    )


def blob(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path


def unpack_blob(path: Path, media_type: str, root: Path, **options: object) -> Unpacked:
    with open_tar_stream(path, media_type, name="sha256:layer") as stream:
        return unpack(stream, root, whiteouts=Whiteouts.DELETE, **options)  # type: ignore[arg-type]


def fails_cleanly(
    root: Path, error: type[errdefs.ErrdefsError], match: str, path: Path, media_type: str
) -> None:
    before = tree(root)
    with pytest.raises(error, match=match):
        unpack_blob(path, media_type, root)
    assert tree(root) == before


@pytest.mark.parametrize(
    ("media_type", "compress"),
    [
        (LAYER_TAR, bytes),
        (DOCKER_LAYER_TAR, bytes),
        (LAYER_GZIP, gzip.compress),
        (DOCKER_LAYER_GZIP, igzip.compress),
        (LAYER_ZSTD, zstandard.ZstdCompressor().compress),
    ],
)
def test_every_layer_media_type(
    root: Path, tmp_path: Path, media_type: str, compress: object
) -> None:
    data = layer_tar()
    result = unpack_blob(blob(tmp_path, compress(data)), media_type, root)  # type: ignore[operator]
    assert (result.digest, result.size) == (sha256(data), len(data))
    assert (root / "usr/lib/libz.so").read_bytes() == b"z" * 300_000


def test_multi_member_gzip_and_multi_frame_zstd(root: Path, tmp_path: Path) -> None:
    data = layer_tar()
    half = len(data) // 2
    unpack_blob(
        blob(tmp_path, gzip.compress(data[:half]) + gzip.compress(data[half:])), LAYER_GZIP, root
    )
    zstd = zstandard.ZstdCompressor(write_checksum=True)
    skippable = b"\x50\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc"
    frames = skippable + zstd.compress(data[:half]) + zstd.compress(data[half:])
    assert unpack_blob(blob(tmp_path, frames), LAYER_ZSTD, root).digest == sha256(data)


def test_an_unknown_media_type_is_refused(tmp_path: Path) -> None:
    path = blob(tmp_path, layer_tar())
    with (
        pytest.raises(errdefs.InvalidArgument, match="'application/octet-stream'"),
        open_tar_stream(path, "application/octet-stream"),
    ):
        pass


@pytest.mark.parametrize(
    ("media_type", "compress", "match"),
    [
        (LAYER_GZIP, bytes, "not gzip"),
        (LAYER_ZSTD, gzip.compress, "not zstd"),
        (LAYER_TAR, gzip.compress, "compressed data"),
        (LAYER_TAR, zstandard.ZstdCompressor().compress, "compressed data"),
        (LAYER_GZIP, lambda _: b"", "not gzip"),
    ],
)
def test_bytes_that_are_not_what_the_media_type_says(
    tmp_path: Path, media_type: str, compress: object, match: str
) -> None:
    path = blob(tmp_path, compress(layer_tar()))  # type: ignore[operator]
    with (
        pytest.raises(errdefs.InvalidArgument, match=f"sha256:layer: {match}"),
        open_tar_stream(path, media_type, name="sha256:layer"),
    ):
        pass


def test_a_missing_blob(tmp_path: Path) -> None:
    with (
        pytest.raises(errdefs.NotFound, match="sha256:layer"),
        open_tar_stream(tmp_path / "nothing", LAYER_GZIP, name="sha256:layer"),
    ):
        pass


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_gzip(root: Path, tmp_path: Path, keep: float) -> None:
    compressed = gzip.compress(layer_tar())
    path = blob(tmp_path, compressed[: int(len(compressed) * keep)])
    fails_cleanly(root, errdefs.InvalidArgument, "sha256:layer: corrupt data", path, LAYER_GZIP)


def test_corrupt_gzip(root: Path, tmp_path: Path) -> None:
    compressed = bytearray(gzip.compress(layer_tar()))
    compressed[len(compressed) // 2] ^= 0xFF
    compressed[-8] ^= 0xFF  # the CRC, in case the flip above still inflates
    path = blob(tmp_path, bytes(compressed))
    fails_cleanly(root, errdefs.InvalidArgument, "corrupt data", path, LAYER_GZIP)


def test_corrupt_zstd(root: Path, tmp_path: Path) -> None:
    compressed = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(layer_tar()))
    compressed[len(compressed) // 2] ^= 0xFF
    path = blob(tmp_path, bytes(compressed))
    fails_cleanly(root, errdefs.InvalidArgument, "corrupt data", path, LAYER_ZSTD)


@pytest.mark.parametrize("cut", [1, 3, 100])
def test_truncated_zstd(root: Path, tmp_path: Path, cut: int) -> None:
    compressed = zstandard.ZstdCompressor().compress(layer_tar())
    path = blob(tmp_path, compressed[:-cut])
    fails_cleanly(root, errdefs.InvalidArgument, "sha256:layer: truncated zstd", path, LAYER_ZSTD)


def test_a_header_claiming_more_data_than_there_is(root: Path, tmp_path: Path) -> None:
    data = bytearray(tar_bytes(file("a", b"a" * 100), file("b", b"b" * 100)))
    lying = tarfile.TarInfo("a")
    lying.size, lying.mtime = 10 * MIB, 0
    data[:512] = lying.tobuf(tarfile.USTAR_FORMAT)
    path = blob(tmp_path, bytes(data))
    fails_cleanly(root, errdefs.InvalidArgument, "unexpected end of stream", path, LAYER_TAR)


def test_a_header_claiming_less_data_than_there_is(root: Path, tmp_path: Path) -> None:
    data = bytearray(tar_bytes(file("a", b"a" * 5000), file("b", b"b")))
    lying = tarfile.TarInfo("a")
    lying.size = 10
    data[:512] = lying.tobuf(tarfile.USTAR_FORMAT)
    path = blob(tmp_path, bytes(data))
    fails_cleanly(
        root, errdefs.InvalidArgument, "bad header checksum at offset 1024", path, LAYER_TAR
    )


def test_a_damaged_header(root: Path, tmp_path: Path) -> None:
    data = bytearray(layer_tar())
    data[600] ^= 0x01  # inside the second header
    path = blob(tmp_path, bytes(data))
    fails_cleanly(root, errdefs.InvalidArgument, "bad header checksum", path, LAYER_TAR)


def test_data_after_a_zero_block(root: Path, tmp_path: Path) -> None:
    one = bare(file("a", b"a"))
    path = blob(tmp_path, one + bytes(512) + tar_bytes(file("b", b"b")))
    fails_cleanly(root, errdefs.InvalidArgument, "data after a zero block", path, LAYER_TAR)


def test_a_malformed_number(root: Path, tmp_path: Path) -> None:
    data = bytearray(tar_bytes(file("a", b"a")))
    data[124:136] = b"00000000x01\0"  # the size field
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[:512])
    path = blob(tmp_path, bytes(data))
    fails_cleanly(root, errdefs.InvalidArgument, "malformed number", path, LAYER_TAR)


def test_max_size_stops_a_bomb(root: Path, tmp_path: Path) -> None:
    """256 MiB of zeros in a 250 KiB gzip blob; the limit stops it at 16 MiB."""
    info = tarfile.TarInfo("bomb")
    info.size = 256 * MIB
    bomb = io.BytesIO()
    with igzip.open(bomb, "wb", compresslevel=1) as out:
        out.write(info.tobuf(tarfile.USTAR_FORMAT))
        for _ in range(256):
            out.write(bytes(MIB))
    path = blob(tmp_path, bomb.getvalue())
    before = tree(root)
    with pytest.raises(errdefs.ResourceExhausted, match="more than 16777216 bytes"):
        unpack_blob(path, LAYER_GZIP, root, max_size=16 * MIB)
    assert tree(root) == before


def test_max_size_counts_the_whole_stream(tmp_path: Path) -> None:
    data = layer_tar()
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(errdefs.ResourceExhausted):
        unpack_bytes(data, root, max_size=len(data) - 1)
    assert unpack_bytes(data, root, max_size=len(data)).size == len(data)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_all([Mount(type="tmpfs", source="tmpfs", options=("size=1m",))], disk)
    try:
        yield disk
    finally:
        unmount(disk)


def test_a_full_disk_is_resource_exhausted(small_disk: Path) -> None:
    (small_disk / "earlier").write_bytes(b"e" * 1000)
    before = tree(small_disk)
    data = tar_bytes(file("small", b"s"), file("big", b"b" * 2 * MIB))
    with pytest.raises(errdefs.ResourceExhausted, match=r"no space left on device.*'big'"):
        unpack_bytes(data, small_disk)
    assert tree(small_disk) == before


def test_a_wrong_diff_id(root: Path) -> None:
    data = layer_tar()
    wrong = "sha256:" + "1" * 64
    before = tree(root)
    with pytest.raises(errdefs.FailedPrecondition) as caught:
        unpack_bytes(data, root, diff_id=wrong)
    assert sha256(data) in str(caught.value)
    assert wrong in str(caught.value)
    assert tree(root) == before
    assert unpack_bytes(data, root, diff_id=sha256(data)).digest == sha256(data)


def test_a_malformed_diff_id_touches_nothing(root: Path) -> None:
    before = tree(root)
    with pytest.raises(errdefs.InvalidArgument, match="invalid digest"):
        unpack_bytes(layer_tar(), root, diff_id="sha256:nothex")
    assert tree(root) == before


def test_stop_cancels_and_undoes(root: Path) -> None:
    stop = threading.Event()
    stop.set()
    before = tree(root)
    with pytest.raises(errdefs.Canceled):
        unpack_bytes(layer_tar(), root, stop=stop)
    assert tree(root) == before


def test_undo_restores_merged_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/ssl").mkdir(parents=True)
    (root / "etc/hosts").write_text("hosts")
    before = tree(root, dir_times=True)
    data = tar_bytes(
        directory("etc", mode=0o700, uid=5, gid=5, mtime=0),
        directory("etc/ssl", mode=0o711),
        file("etc/hosts", b"replaced"),
        file("etc/ssl/new", b"n"),
        directory("opt/app"),
        file("../escape", b"x"),
    )
    with pytest.raises(errdefs.InvalidArgument, match=r"'\.\./escape'"):
        unpack_bytes(data, root)
    after = tree(root, dir_times=True)
    assert "etc/hosts" not in after  # replaced, then undone: the old file cannot come back
    before.pop("etc/hosts")
    assert after == before
