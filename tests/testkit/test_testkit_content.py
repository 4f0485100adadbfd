from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from flotilla.testkit import tarlayer as t
from flotilla.testkit.content import RandomBytes, open_content


def _read_all(content: RandomBytes, chunk: int) -> bytes:
    stream = open_content(content)
    parts = []
    while part := stream.read(chunk):
        parts.append(part)
    return b"".join(parts)


def test_random_bytes_do_not_depend_on_read_sizes() -> None:
    content = RandomBytes(3 * (1 << 20) + 12345, seed="x")
    whole = _read_all(content, 1 << 22)
    assert len(whole) == content.size
    assert _read_all(content, 4097) == whole
    assert _read_all(RandomBytes(content.size, seed="y"), 1 << 20) != whole


def test_zero_fraction_makes_part_of_each_block_zeros() -> None:
    data = _read_all(RandomBytes(1 << 20, seed="z", zero_fraction=0.5), 1 << 16)
    assert data[-(1 << 19) :] == bytes(1 << 19)


def test_layer_adds_parents_and_refuses_bad_links(tmp_path: Path) -> None:
    layer = t.write_layer([t.file("a/b/c.txt", b"hi")], tmp_path / "l.tgz")
    with tarfile.open(layer.path, "r:gz") as tar:
        assert tar.getnames() == ["a", "a/b", "a/b/c.txt"]
    with pytest.raises(ValueError, match="precedes its target"):
        t.write_layer([t.file("z", b""), t.hardlink("a", "z")], tmp_path / "x.tgz")
    with pytest.raises(ValueError, match="duplicate"):
        t.write_layer([t.file("z", b""), t.file("z", b"1")], tmp_path / "y.tgz")


def test_whiteout_and_opaque_markers() -> None:
    assert t.whiteout("/data/doomed.txt").path == "data/.wh.doomed.txt"
    assert t.opaque("data/opaque/").path == "data/opaque/.wh..wh..opq"
