"""A layer's tar stream, read ahead, hashed and counted in a thread of its own (blocking).

The decompressors (isal, zstd) and sha256 release the GIL while they work, so a thread that
reads the stream, hashes it and counts it runs beside the one that parses the tar and writes
the files: that one only parses and writes. A few chunks are read ahead, no more (a layer
that would unpack to more than it may is stopped there).
"""

from __future__ import annotations

import queue
import threading
from typing import Final

from flotilla.common import digests, errdefs
from flotilla.common.digests import Digest
from flotilla.snapshots.diff.compression import CHUNK, Readable

__all__ = ["AHEAD", "ReadAhead"]

AHEAD: Final = 2
"""Chunks read ahead of the reader: enough to keep both threads busy. More only holds more
memory, which the allocator then gives back and faults in again."""


class ReadAhead:
    """The stream, hashed and counted (and limited) as it is read, ahead of its reader.

    :meth:`read` raises what reading the stream raised. Use it in a ``with`` block, or call
    :meth:`close` once done (it waits for the thread); :meth:`digest` and :attr:`size` are
    the whole stream's once :meth:`read` has returned ``b""``.

    Args:
        stream: the tar bytes (blocking).
        max_size: the most bytes accepted; no limit when ``None``.
        algorithm: the digest's algorithm.
    """

    def __init__(self, stream: Readable, max_size: int | None, algorithm: str) -> None:
        self._stream = stream
        self._max = max_size
        self._hash = digests.hasher(algorithm)
        self.size = 0
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(AHEAD)
        self._closed = False
        self._ended = False
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="layer read-ahead", daemon=True
        )
        try:
            self._thread.start()
        except RuntimeError:  # no thread to be had: read in the reader's thread
            self._thread = None

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self) -> bytes:
        """The next chunk of the stream; ``b""`` at its end.

        Raises:
            InvalidArgument: corrupt or truncated data (from the decompressor).
            ResourceExhausted: more than ``max_size`` bytes.
        """
        if self._ended:
            return b""
        item = self._queue.get() if self._thread is not None else self._next()
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        self._ended = not item
        return item

    def digest(self) -> str:
        """The digest of what was read."""
        return str(Digest.of(self._hash))

    def close(self) -> None:
        """Stop reading ahead and wait for the thread."""
        self._closed = True
        if self._thread is None:
            return
        while True:  # a thread waiting to put a chunk gets room, then sees it is closed
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def _run(self) -> None:
        while not self._closed:
            item = self._next()
            if self._closed:
                return
            self._queue.put(item)
            if isinstance(item, BaseException) or not item:
                return

    def _next(self) -> bytes | BaseException:
        """The next chunk, hashed and counted; or what stopped it."""
        try:
            data = self._stream.read(CHUNK)
            self.size += len(data)
            if self._max is not None and self.size > self._max:
                raise errdefs.ResourceExhausted(f"layer unpacks to more than {self._max} bytes")
            self._hash.update(data)
        except BaseException as err:  # noqa: BLE001 - raised again by read, in the reader's thread
            return err
        return data
