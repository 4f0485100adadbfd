"""The read-ahead thread: the whole stream, in order, hashed and counted; errors handed to
the reader; never more than a few chunks ahead; nothing left running once closed."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest
from unpack_tars import file, tar_bytes, unpack_bytes

from flotilla.common import errdefs
from flotilla.snapshots.diff.compression import CHUNK
from flotilla.snapshots.diff.unpack_source import AHEAD, ReadAhead

DATA = bytes(range(256)) * (14 * CHUNK // 1024)  # three and a half chunks


class Counting:
    """A stream that counts its reads, and fails at the read numbered ``fail_at``."""

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self.reads = 0
        self._fail_at = fail_at

    def read(self, size: int, /) -> bytes:
        self.reads += 1
        if self.reads == self._fail_at:
            raise errdefs.InvalidArgument("layer x: corrupt data")
        return self._data.read(size)


def read_all(source: ReadAhead) -> bytes:
    out = b""
    while chunk := source.read():
        out += chunk
    return out


def read_ahead_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "layer read-ahead"]


def test_the_whole_stream_in_order_hashed_and_counted() -> None:
    with ReadAhead(Counting(DATA), None, "sha256") as source:
        assert read_all(source) == DATA
        assert source.read() == b""  # and again at the end
    assert source.digest() == f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    assert source.size == len(DATA)
    assert read_ahead_threads() == []


def test_an_error_reaches_the_reader_after_the_chunks_before_it() -> None:
    with ReadAhead(Counting(DATA, fail_at=3), None, "sha256") as source:
        assert source.read() + source.read() == DATA[: 2 * CHUNK]
        with pytest.raises(errdefs.InvalidArgument, match="corrupt data"):
            source.read()
        assert source.read() == b""


def test_it_reads_only_a_few_chunks_ahead_and_stops_when_closed() -> None:
    stream = Counting(DATA * 10)
    with ReadAhead(stream, None, "sha256") as source:
        source.read()
        for _ in range(1000):  # until the thread has filled what it may hold ahead
            if stream.reads >= 1 + AHEAD:
                break
            threading.Event().wait(0.01)
        threading.Event().wait(0.05)  # time to read too far, were it to
        # One chunk handed over, the queue full, one more read and waiting for room.
        assert stream.reads <= 1 + AHEAD + 1
    assert read_ahead_threads() == []  # a thread waiting to hand a chunk over is gone too


def test_max_size_stops_the_thread_early() -> None:
    stream = Counting(DATA * 100)
    with ReadAhead(stream, CHUNK + 1, "sha256") as source:
        source.read()
        with pytest.raises(errdefs.ResourceExhausted, match=f"more than {CHUNK + 1} bytes"):
            source.read()
    assert stream.reads == 2


def test_without_a_thread_it_reads_in_the_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with ReadAhead(Counting(DATA), None, "sha512") as source:
        assert read_all(source) == DATA
    assert source.digest() == f"sha512:{hashlib.sha512(DATA).hexdigest()}"


@pytest.mark.root
def test_a_failed_unpack_leaves_no_thread_behind(tmp_path: Path) -> None:
    data = tar_bytes(file("a", DATA), file("b", DATA))
    with pytest.raises(errdefs.InvalidArgument, match="unexpected end of stream"):
        unpack_bytes(data[: len(data) // 2], tmp_path)
    with pytest.raises(errdefs.FailedPrecondition, match="does not match"):
        unpack_bytes(data, tmp_path, diff_id=f"sha256:{'0' * 64}")
    assert read_ahead_threads() == []
    assert list(tmp_path.iterdir()) == []
