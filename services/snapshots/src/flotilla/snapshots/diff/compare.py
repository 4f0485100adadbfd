"""``LayerComparer``: containerd's walking differ, with overlayfs' fast path.

Which trees are walked:

- ``upper`` is one overlay mount stacked on exactly ``lower``'s directories: only its upper
  directory is read (:func:`~flotilla.snapshots.diff.changes.overlay_changes`), the way
  containerd's overlay snapshotter diffs a layer it made itself.
- ``upper`` is one bind mount and ``lower`` is empty: the whole tree of the bound directory is
  the layer.
- Anything else: both are mounted read-only on temporary directories and walked side by side
  (:func:`~flotilla.snapshots.diff.changes.double_walk`).

``lower``'s directories are those of an empty list (none), of one bind mount (its source) or
of one overlay mount (its upper directory, if any, over its lower ones).

The layer is first written to a temporary file under ``work_dir`` in a worker thread, so its
digest and size are known before the content store is asked for a writer, and then streamed
into the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Protocol, TypeVar

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, lower_dirs, option_value, temp_mount
from flotilla.content.store import Ingester, IngestManager, Writer
from flotilla.snapshots.diff.archive import Compression, Layer, write_layer
from flotilla.snapshots.diff.changes import UnsupportedUpper, double_walk, overlay_changes
from flotilla.snapshots.diff.differ import (
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    LAYER_GZIP,
    LAYER_TAR,
    LAYER_ZSTD,
    UNCOMPRESSED_LABEL,
    Descriptor,
)

__all__ = ["CHUNK", "LayerComparer", "LayerContent", "Plan", "plan", "read_only"]

T = TypeVar("T")

CHUNK: Final = 4 << 20
"""The size of each write into the content store."""

_COMPRESSION: Final[dict[str, Compression]] = {
    LAYER_GZIP: "gzip",
    DOCKER_LAYER_GZIP: "gzip",
    LAYER_ZSTD: "zstd",
    LAYER_TAR: "none",
    DOCKER_LAYER_TAR: "none",
}
# Overlay options under which the upper directory alone may not tell the changes.
_NO_FAST_PATH: Final = ("metacopy=on", "redirect_dir=on", "userxattr")


class LayerContent(Ingester, IngestManager, Protocol):
    """What the comparer needs of a content store: ingests, and aborting the ones it started."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How to find the changes between two mounts' trees.

    Attributes:
        upperdir: walk only this overlay upper directory (the fast path), or ``""``.
        lowerdirs: the overlay's lower directories (for the fast path).
        tree: the upper tree is this directory and the lower one empty, or ``""``.
    """

    upperdir: str = ""
    lowerdirs: tuple[str, ...] = ()
    tree: str = ""


def plan(lower: Sequence[Mount], upper: Sequence[Mount]) -> Plan:
    """The cheapest way to diff ``upper`` against ``lower`` (empty: mount both and walk)."""
    lowers = _stacked_dirs(lower)
    if len(upper) != 1 or lowers is None or upper[0].target.strip("/"):
        return Plan()
    mount = upper[0]
    if not lower and _is_bind(mount):
        return Plan(tree=mount.source)
    upperdir = option_value(mount, "upperdir")
    if mount.type != "overlay" or not upperdir or not lowers:
        return Plan()
    if any(option.startswith(_NO_FAST_PATH) for option in mount.options):
        return Plan()
    if [os.path.normpath(x) for x in lower_dirs(mount)] != lowers:
        return Plan()
    return Plan(upperdir=upperdir, lowerdirs=tuple(lowers))


def _is_bind(mount: Mount) -> bool:
    return mount.type == "bind" or "bind" in mount.options or "rbind" in mount.options


def _stacked_dirs(mounts: Sequence[Mount]) -> list[str] | None:
    """The directories a lower tree stacks, topmost first; ``None`` if it is not that simple."""
    if not mounts:
        return []
    if len(mounts) != 1 or mounts[0].target.strip("/"):
        return None
    mount = mounts[0]
    if _is_bind(mount):
        return [os.path.normpath(mount.source)]
    if mount.type != "overlay":
        return None
    upperdir = option_value(mount, "upperdir")
    dirs = ([upperdir] if upperdir else []) + lower_dirs(mount)
    return [os.path.normpath(x) for x in dirs]


def read_only(mounts: Sequence[Mount]) -> list[Mount]:
    """``mounts`` made read-only, as containerd's ``readonlyMounts``.

    An overlay loses its work directory and its upper directory becomes the topmost lower
    one; every other mount gets ``ro`` instead of ``rw``.
    """
    return [_read_only(mount) for mount in mounts]


def _read_only(mount: Mount) -> Mount:
    options = [x for x in mount.options if x not in ("ro", "rw")]
    if mount.type == "overlay":
        upperdir = option_value(mount, "upperdir")
        options = [x for x in options if not x.startswith(("upperdir=", "workdir="))]
        if upperdir:
            lowers = ":".join([upperdir, *lower_dirs(mount)])
            options = [f"lowerdir={lowers}" if x.startswith("lowerdir=") else x for x in options]
    return Mount(
        type=mount.type, source=mount.source, target=mount.target, options=(*options, "ro")
    )


class LayerComparer:
    """containerd's ``diff.Comparer`` over a content store; see the module docstring.

    Args:
        content: where layers are committed.
        work_dir: where temporary layers and mount points go (created if missing).
    """

    def __init__(self, content: LayerContent, work_dir: Path) -> None:
        self._content = content
        self._work_dir = work_dir

    async def compare(
        self,
        namespace: str,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str = LAYER_GZIP,
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """See :meth:`flotilla.snapshots.diff.differ.Comparer.compare`.

        Raises:
            InvalidArgument: ``media_type`` is not a tar, gzip or zstd layer.
            Unavailable: another writer holds the ingest ``ref``.
            NotFound, PermissionDenied, ResourceExhausted, Internal: mounting, reading or
                writing failed (the message names the path).
        """
        compression = _COMPRESSION.get(media_type)
        if compression is None:
            raise errdefs.InvalidArgument(f"unsupported diff media type {media_type!r}")
        how = plan(lower, upper)
        # Named here, made by the thread: a cancellation at any point leaves nothing behind.
        path = self._work_dir / f"layer-{secrets.token_hex(8)}.tmp"
        try:
            stop = threading.Event()
            layer = await _stoppable(
                stop, lambda: self._write(how, lower, upper, path, compression, stop)
            )
            descriptor = Descriptor(media_type=media_type, digest=layer.digest, size=layer.size)
            merged = {**(labels or {}), UNCOMPRESSED_LABEL: layer.diff_id}
            await self._commit(namespace, ref, path, descriptor, merged)
            return descriptor
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    def _write(
        self,
        how: Plan,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        path: Path,
        compression: Compression,
        stop: threading.Event,
    ) -> Layer:
        """Write the layer into ``path`` (blocking)."""
        try:
            self._work_dir.mkdir(parents=True, exist_ok=True)
            with open(path, "xb") as out:
                if how.upperdir:
                    try:
                        return _write_upperdir(how, out, compression, stop)
                    except UnsupportedUpper:
                        out.seek(0)
                        out.truncate()
                if how.tree:
                    tree = Path(how.tree)
                    changes = double_walk(None, tree)
                    return write_layer(changes, tree, out, compression=compression, stop=stop)
                return self._write_mounted(lower, upper, out, compression, stop)
        except OSError as error:
            raise errdefs.from_os_error(error, os.fsdecode(error.filename or path)) from error

    def _write_mounted(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        out: BinaryIO,
        compression: Compression,
        stop: threading.Event,
    ) -> Layer:
        with ExitStack() as stack:
            lower_root = (
                stack.enter_context(temp_mount(read_only(lower), self._work_dir)) if lower else None
            )
            upper_root = stack.enter_context(temp_mount(read_only(upper), self._work_dir))
            changes = double_walk(lower_root, upper_root)
            return write_layer(changes, upper_root, out, compression=compression, stop=stop)

    async def _commit(
        self,
        namespace: str,
        ref: str,
        path: Path,
        descriptor: Descriptor,
        labels: Mapping[str, str],
    ) -> None:
        """Stream the file into the store and commit it; a blob already there counts."""
        started = ref or f"flotilla-diff-{secrets.token_hex(12)}"
        try:
            writer = await self._content.writer(
                namespace, started, total=descriptor.size, expected=descriptor.digest
            )
        except errdefs.AlreadyExists:
            return
        try:
            async with writer:
                await _send(writer, path, descriptor.size)
                await writer.commit(descriptor.size, descriptor.digest, labels)
        except errdefs.AlreadyExists:
            return
        except BaseException:
            if not ref:
                # containerd aborts an ingest it named itself: nobody can resume it.
                with contextlib.suppress(errdefs.ErrdefsError):
                    await self._content.abort(namespace, started)
            raise


def _write_upperdir(
    how: Plan, out: BinaryIO, compression: Compression, stop: threading.Event
) -> Layer:
    upperdir = Path(how.upperdir)
    changes = overlay_changes(upperdir, [Path(x) for x in how.lowerdirs])
    return write_layer(changes, upperdir, out, compression=compression, stop=stop)


async def _send(writer: Writer, path: Path, size: int) -> None:
    """The file's bytes from where the ingest stands (a resumed one kept its prefix)."""
    if writer.offset > size:
        await writer.truncate(0)
    try:
        fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise errdefs.from_os_error(error, str(path)) from error
    try:
        offset = writer.offset
        while chunk := await asyncio.to_thread(_read, fd, offset, path):
            await writer.write(chunk)
            offset += len(chunk)
    finally:
        os.close(fd)


def _read(fd: int, offset: int, path: Path) -> bytes:
    try:
        return os.pread(fd, CHUNK, offset)
    except OSError as error:
        raise errdefs.from_os_error(error, str(path)) from error


async def _stoppable(stop: threading.Event, work: Callable[[], T]) -> T:
    """``work()`` in a worker thread; if the caller is cancelled, stop it and wait for its end.

    The thread holds mounts and files that must be released before anything else touches
    them, so cancellation waits for it (it checks ``stop`` between entries and chunks).
    """
    future = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what the caller sees
        raise
