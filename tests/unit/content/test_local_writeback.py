"""Early writeback of ingest bytes: a hint that never changes what the file holds."""

from __future__ import annotations

import os
from pathlib import Path

from flotilla.content import local_writeback
from flotilla.content.local_writeback import Writeback


def test_sync_file_range_is_found_on_linux() -> None:
    assert local_writeback._sync_file_range is not None


def _written(path: Path, writeback: Writeback, fd: int, data: bytes) -> None:
    end = os.fstat(fd).st_size + len(data)
    os.pwrite(fd, data, end - len(data))
    writeback.written(end)


def test_writeback_in_steps_keeps_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        writeback = Writeback(fd, 0, every=4096)
        for block in (b"a" * 1000, b"b" * 5000, b"c" * 10_000):
            _written(path, writeback, fd, block)
        os.ftruncate(fd, 100)
        writeback.written(100)  # after a truncate, the step starts again from the new end
        _written(path, writeback, fd, b"d" * 8192)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"a" * 100 + b"d" * 8192
