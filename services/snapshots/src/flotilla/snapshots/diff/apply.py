"""containerd's ``diff.Applier`` for this node: unpack a layer blob onto a snapshot's mounts.

The target is chosen as containerd's ``apply_linux`` chooses it:

- one read-write bind mount: its source directory, a whole tree, so whiteouts delete;
- one overlay mount with an ``upperdir``: the upper directory, with overlayfs' own whiteouts.
  The upper directory is unpacked as a root of its own: the lower directories are never read
  (no metadata is copied up from them, no symlink in them is followed), because layers may
  be applied in parallel while the lowers are still being filled;
- anything else: the mounts are mounted on a temporary directory (under ``work_dir``) and
  the layer is unpacked into the mounted tree, whiteouts deleting.

The unpacking itself runs in a worker thread; a caller cancelled while it runs stops it
before its next entry and waits until what it did is undone.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, option_value, read_only, temp_mount
from flotilla.snapshots.diff.compression import compression_of, open_tar_stream
from flotilla.snapshots.diff.differ import LAYER_TAR, BlobPath, Descriptor
from flotilla.snapshots.diff.unpack import Unpacked, Whiteouts, unpack

__all__ = ["LayerApplier", "target_of"]


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
        max_size: the most bytes a layer may unpack to (its uncompressed tar); no limit when
            ``None``.
        work_dir: where temporary mount points are made; the system's temporary directory
            when ``None``.
    """

    def __init__(
        self, blob_path: BlobPath, *, max_size: int | None = None, work_dir: Path | None = None
    ) -> None:
        self._blob_path = blob_path
        self._max_size = max_size
        self._work_dir = work_dir

    async def apply(
        self,
        namespace: str,
        layer: Descriptor,
        mounts: Sequence[Mount],
        *,
        diff_id: str = "",
    ) -> Descriptor:
        """Unpack ``layer`` onto ``mounts`` (see :meth:`.differ.Applier.apply`)."""
        compression_of(layer.media_type)  # an unknown media type fails before any work
        if not mounts:
            raise errdefs.InvalidArgument(f"apply layer {layer.digest}: no mounts")
        path = await self._blob_path(namespace, layer.digest)
        stop = threading.Event()
        work = asyncio.ensure_future(
            asyncio.to_thread(self._apply, path, layer, list(mounts), diff_id, stop)
        )
        try:
            unpacked = await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([work])  # the files are ours until the thread is done
            raise
        return Descriptor(media_type=LAYER_TAR, digest=unpacked.digest, size=unpacked.size)

    def _apply(
        self,
        path: Path,
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
        path: Path,
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
