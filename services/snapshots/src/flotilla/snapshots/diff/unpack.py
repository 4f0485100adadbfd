"""Unpacking a layer's tar stream under a root directory (blocking: run it in a worker thread).

containerd's ``archive.Apply``, with one difference in kind: nothing in the archive may
touch anything outside the root. Entry paths are checked (no absolute paths, no ``..``) and
every directory is reached from the root's descriptor one component at a time, following
symlinks only as the container would and only while they stay inside the root
(:mod:`~flotilla.snapshots.diff.unpack_paths`); an entry's own name is never followed, but
replaced. Hard links must link to an entry already inside the root.

The tar bytes are hashed as they are read, in a thread of their own that reads ahead
(:mod:`~flotilla.snapshots.diff.unpack_source`): the result is the layer's diffID (the digest
of the whole uncompressed stream, bytes after the archive's end included) and size. A limit
on those bytes stops decompression bombs.

On any failure the root is left as it was found, as far as that is possible: a root that was
empty is emptied again, otherwise what the unpack created is removed (see
:mod:`~flotilla.snapshots.diff.unpack_rollback` for what cannot be undone).
"""

from __future__ import annotations

import enum
import errno
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from flotilla.common import digests, errdefs
from flotilla.snapshots.diff import unpack_whiteouts as whiteouts
from flotilla.snapshots.diff.compression import Readable
from flotilla.snapshots.diff.unpack_paths import Root, split_name
from flotilla.snapshots.diff.unpack_rollback import is_empty, undo, wipe
from flotilla.snapshots.diff.unpack_source import ReadAhead
from flotilla.snapshots.diff.unpack_tar import TarReader
from flotilla.snapshots.diff.unpack_tar_fields import Member
from flotilla.snapshots.diff.unpack_write import KNOWN_TYPES, Tracker, Writer, set_dir_times

__all__ = ["Unpacked", "Whiteouts", "unpack"]

# Errors that are about the machine rather than the layer keep their own class.
_ENVIRONMENT: Final = frozenset(
    (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EMFILE,
        errno.ENFILE,
        errno.ENOMEM,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
    )
)


class Whiteouts(enum.Enum):
    """What whiteout markers become (see :mod:`~flotilla.snapshots.diff.unpack_whiteouts`)."""

    OVERLAY = "overlay"
    """overlayfs' own markers, in an upper directory."""
    DELETE = "delete"
    """The deletions themselves, in a whole tree."""


@dataclass(frozen=True, slots=True)
class Unpacked:
    """What was unpacked.

    Attributes:
        digest: the uncompressed stream's digest (the layer's diffID).
        size: its length in bytes.
    """

    digest: str
    size: int


def unpack(
    stream: Readable,
    root: Path,
    *,
    whiteouts: Whiteouts,
    max_size: int | None = None,
    diff_id: str = "",
    stop: threading.Event | None = None,
) -> Unpacked:
    """Unpack the tar ``stream`` under the directory ``root``.

    Args:
        stream: the uncompressed tar bytes.
        root: the directory to unpack into; it must exist.
        whiteouts: what whiteout markers become.
        max_size: the most uncompressed bytes accepted; no limit when ``None``.
        diff_id: when given, the digest the stream must have (its algorithm is used).
        stop: when set, the unpack stops before its next entry (and is undone).

    Raises:
        InvalidArgument: a malformed, truncated or corrupt stream, or an entry that would
            touch anything outside the root (the error names it).
        FailedPrecondition: the stream's digest is not ``diff_id``.
        ResourceExhausted: more than ``max_size`` bytes, or the disk is full.
        Canceled: ``stop`` was set.
    """
    algorithm = digests.parse(diff_id).algorithm if diff_id else "sha256"
    track = Tracker(undo=False)
    try:
        tree = Root(root, track.made)
    except OSError as err:
        raise errdefs.from_os_error(err, f"unpack root {root}") from err
    try:
        track.undo = not is_empty(tree.fd)
        try:
            with ReadAhead(stream, max_size, algorithm) as source:
                try:
                    _unpack_all(TarReader(source), tree, track, whiteouts, stop)
                except BaseException:
                    if stop is not None:  # wakes a read-ahead that waits for a download's bytes
                        stop.set()
                    raise
            digest = source.digest()
            if diff_id and digest != diff_id:
                raise errdefs.FailedPrecondition(
                    f"layer diffID {digest} does not match the expected {diff_id}"
                )
        except BaseException:
            (undo if track.undo else wipe)(tree.fd, track)
            raise
    finally:
        tree.close()
    return Unpacked(digest, source.size)


def _unpack_all(
    reader: TarReader,
    tree: Root,
    track: Tracker,
    mode: Whiteouts,
    stop: threading.Event | None,
) -> None:
    writer = Writer(tree, reader, track, overlay_xattrs=mode is Whiteouts.DELETE)
    while (member := reader.next()) is not None:
        if stop is not None and stop.is_set():
            raise errdefs.Canceled(f"unpacking into {tree.path} was stopped")
        tree.tidy()
        _entry(writer, member, mode)
    try:
        set_dir_times(tree.fd, track.dir_times)
    except OSError as err:
        raise errdefs.from_os_error(err, f"unpack root {tree.path}") from err
    reader.drain()


def _entry(writer: Writer, member: Member, mode: Whiteouts) -> None:
    entry = member.name
    try:
        parts = split_name(entry, entry)
        if not parts:
            return  # the root itself
        name = parts[-1]
        if whiteouts.PREFIX in entry:  # the only entries that may be markers or metadata
            if whiteouts.skipped(parts):
                return  # AUFS metadata
            if whiteouts.is_whiteout(name):
                _whiteout(writer, member, parts, mode)
                return
        if member.type not in KNOWN_TYPES:
            raise errdefs.InvalidArgument(
                f"layer entry {entry!r}: unsupported tar entry type {member.type!r}"
            )
        parent = writer.root.made_parent(parts, entry)
        writer.write(member, parent, name)
        if mode is Whiteouts.DELETE:
            writer.track.unpacked.add("/".join((*parent.path, name)))
    except OSError as err:
        if err.errno in _ENVIRONMENT:
            raise errdefs.from_os_error(err, f"layer entry {entry!r}") from err
        cause = (err.strerror or "os error").lower()
        raise errdefs.InvalidArgument(f"layer entry {entry!r}: {cause}") from err
    except (ValueError, OverflowError) as err:  # e.g. a NUL in a link target, a huge device
        raise errdefs.InvalidArgument(f"layer entry {entry!r}: {err}") from err


def _whiteout(writer: Writer, member: Member, parts: list[str], mode: Whiteouts) -> None:
    name = parts[-1]
    if mode is Whiteouts.OVERLAY:
        whiteouts.overlay(writer, member, writer.root.made_parent(parts, member.name), name)
        return
    parent = writer.root.parent(parts, member.name, create=False)
    if parent is not None:  # nothing to delete where there is no directory
        whiteouts.delete(writer, parent, name, member)
