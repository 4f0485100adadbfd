"""containerd's ``diff.Applier`` for this node: unpack a layer blob onto a snapshot's mounts.

The target is chosen as containerd's ``apply_linux`` chooses it:

- one read-write bind mount: its source directory, a whole tree, so whiteouts delete;
- one overlay mount with an ``upperdir``: the upper directory, with overlayfs' own whiteouts.
  The upper directory is unpacked as a root of its own: the lower directories are never read
  (no metadata is copied up from them, no symlink in them is followed), because layers may
  be applied in parallel while the lowers are still being filled;
- anything else: the mounts are mounted on a temporary directory (under ``work_dir``) and
  the layer is unpacked into the mounted tree, whiteouts deleting.

The unpacking itself runs in a worker thread of the applier's own pool; a caller cancelled
while it runs stops it before its next entry and waits until what it did is undone.

Given the ``ref`` of the content ingest the layer's bytes are still arriving in, and unless the
blob is committed already, the applier asks content for the ingest's data file (waiting up to
the idle limit for it to appear, as the writer may start a moment after the apply) and reads
it as it grows (:mod:`~flotilla.snapshots.diff.follow`); a cancelled caller stops that wait too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, option_value, read_only, temp_mount
from flotilla.common.settle import run_settled
from flotilla.snapshots.diff.compression import compression_of, open_tar_stream
from flotilla.snapshots.diff.differ import LAYER_TAR, BlobPath, Descriptor, IngestPath
from flotilla.snapshots.diff.follow import DEFAULT_IDLE, GrowingFile
from flotilla.snapshots.diff.unpack import Unpacked, Whiteouts, unpack

__all__ = ["APPLY_THREADS", "LayerApplier", "target_of"]

APPLY_THREADS: Final = 64
"""Applies at once. Each holds a thread while it unpacks, and one that follows an ingest holds
it for as long as the download takes: in a pool of their own they never take the few threads
of the event loop's default pool from the service's other work (prepare, commit, remove)."""

# Seconds between two looks for a blob or an ingest that is not there yet (doubling).
_LOOK_MIN: Final = 0.01
_LOOK_MAX: Final = 0.25


def target_of(mounts: Sequence[Mount]) -> tuple[Path, Whiteouts] | None:
    """Where ``mounts`` are unpacked into without mounting them, and how.

    ``None`` when they must be mounted first.
    """
    if len(mounts) != 1 or mounts[0].target:
        return None
    mount = mounts[0]
    if mount.type == "bind" and not read_only(mount):
        return Path(mount.source), Whiteouts.DELETE
    upper = option_value(mount, "upperdir") if mount.type == "overlay" else None
    if upper:
        return Path(upper), Whiteouts.OVERLAY
    return None


class LayerApplier:
    """Unpacks layers from this node's content store (a :class:`~.differ.Applier`).

    An overlay's upper directory is unpacked as a root of its own: its lower directories
    are never read, so layers may be applied in parallel while their lowers are still
    being filled (see the module's description for how the target is chosen).

    Args:
        blob_path: where a namespace's blob lies on this node's disk.
        ingest_path: where a namespace's ingest's file lies on this node's disk; without it
            an apply's ``ref`` is ignored and only committed blobs are read.
        follow_idle: seconds an apply with a ``ref`` waits for the blob or the ingest to
            appear, and then for each next byte of the ingest.
        max_size: the most bytes a layer may unpack to (its uncompressed tar); no limit when
            ``None``.
        work_dir: where temporary mount points are made; the system's temporary directory
            when ``None``.
        threads: how many applies run at once (more wait for a thread).
    """

    def __init__(
        self,
        blob_path: BlobPath,
        *,
        ingest_path: IngestPath | None = None,
        follow_idle: float = DEFAULT_IDLE,
        max_size: int | None = None,
        work_dir: Path | None = None,
        threads: int = APPLY_THREADS,
    ) -> None:
        self._blob_path = blob_path
        self._ingest_path = ingest_path
        self._follow_idle = follow_idle
        self._max_size = max_size
        self._work_dir = work_dir
        self._threads = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="layer-apply"
        )

    def close(self) -> None:
        """Let the threads go once their applies end (cancel those first: they wait for none)."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def apply(
        self,
        namespace: str,
        layer: Descriptor,
        mounts: Sequence[Mount],
        *,
        diff_id: str = "",
        ref: str = "",
    ) -> Descriptor:
        """Unpack ``layer`` onto ``mounts`` (see :meth:`.differ.Applier.apply`)."""
        compression_of(layer.media_type)  # an unknown media type fails before any work
        if not mounts:
            raise errdefs.InvalidArgument(f"apply layer {layer.digest}: no mounts")
        stop = threading.Event()
        if ref and self._ingest_path is not None:
            blob = await self._follow(self._ingest_path, namespace, layer, ref, stop)
        else:
            blob = await self._blob_path(namespace, layer.digest)
        try:
            context = contextvars.copy_context()  # as asyncio.to_thread, for the trace's context
            work = asyncio.get_running_loop().run_in_executor(
                self._threads,
                functools.partial(
                    context.run, self._apply, blob, layer, list(mounts), diff_id, stop
                ),
            )
            try:
                unpacked = await asyncio.shield(work)
            except asyncio.CancelledError:
                stop.set()  # also wakes a read waiting for the ingest's next bytes
                await asyncio.wait([work])  # the files are ours until the thread is done
                raise
        finally:
            if isinstance(blob, GrowingFile):
                blob.close()
        return Descriptor(media_type=LAYER_TAR, digest=unpacked.digest, size=unpacked.size)

    async def _follow(
        self,
        ingest_path: IngestPath,
        namespace: str,
        layer: Descriptor,
        ref: str,
        stop: threading.Event,
    ) -> Path | GrowingFile:
        """The committed blob's path, or else the ingest's file opened to read as it grows.

        Looks for either (more and more rarely) until one appears or the idle limit passes.
        """
        label = f"layer {layer.digest} (ingest {ref!r})"
        if layer.size <= 0:
            raise errdefs.InvalidArgument(f"{label}: following an ingest needs the layer's size")
        loop = asyncio.get_running_loop()
        give_up, pause = loop.time() + self._follow_idle, _LOOK_MIN
        while True:
            with contextlib.suppress(errdefs.NotFound):
                return await self._blob_path(namespace, layer.digest)
            with contextlib.suppress(errdefs.NotFound):
                path, file_id = await ingest_path(namespace, ref)
                opener = functools.partial(
                    GrowingFile.open, label=label, idle=self._follow_idle, stop=stop
                )
                opened = await run_settled(None, opener, path, file_id, layer.size, discard=_close)
                if opened is not None:
                    return opened
                # Committed or aborted since content answered, or started afresh: look again.
            if loop.time() >= give_up:
                raise errdefs.DeadlineExceeded(
                    f"{label}: neither the blob nor the ingest appeared "
                    f"in namespace {namespace} within {self._follow_idle:g} s"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LOOK_MAX)

    def _apply(
        self,
        path: Path | GrowingFile,
        layer: Descriptor,
        mounts: list[Mount],
        diff_id: str,
        stop: threading.Event,
    ) -> Unpacked:
        target = target_of(mounts)
        if target is not None:
            return self._unpack(path, layer, *target, diff_id, stop)
        try:
            if self._work_dir is not None:
                self._work_dir.mkdir(parents=True, exist_ok=True)
            with temp_mount(mounts, self._work_dir) as root:
                return self._unpack(path, layer, root, Whiteouts.DELETE, diff_id, stop)
        except OSError as err:  # the temporary mount point
            raise errdefs.from_os_error(err, f"apply layer {layer.digest}") from err

    def _unpack(
        self,
        path: Path | GrowingFile,
        layer: Descriptor,
        root: Path,
        whiteouts: Whiteouts,
        diff_id: str,
        stop: threading.Event,
    ) -> Unpacked:
        try:
            with open_tar_stream(path, layer.media_type, name=layer.digest) as stream:
                return unpack(
                    stream,
                    root,
                    whiteouts=whiteouts,
                    max_size=self._max_size,
                    diff_id=diff_id,
                    stop=stop,
                )
        except errdefs.ErrdefsError as err:
            if layer.digest in err.message:
                raise
            raise type(err)(f"layer {layer.digest}: {err.message}") from err


def _close(file: GrowingFile | None) -> None:
    if file is not None:
        file.close()
