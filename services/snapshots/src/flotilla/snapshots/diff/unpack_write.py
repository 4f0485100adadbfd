"""Creating one layer entry in its directory (blocking): files, directories, links, devices.

Every call names its directory by descriptor (``openat``, ``mkdirat``, ``symlinkat``...) and
never follows the entry's own name: whatever is there is replaced (a directory only by
something that is not a directory, which is then merged). Metadata goes on in containerd's
order: owner, then extended attributes (``chown`` would clear ``security.capability``), then
mode (``chown`` clears setuid and setgid bits), then times. A directory's times are set at
the very end, once nothing more is created in it.

Files and directories are created with their permission bits, and ``fstat`` tells whether
the owner and mode the kernel gave them are already the entry's: most often they are (a
root-owned ``0644`` file, unpacked as root), and ``fchown`` and ``fchmod`` are skipped.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from flotilla.common import errdefs
from flotilla.snapshots.diff.unpack_paths import DIR_FLAGS, Dir, PlainDirs, Root, split_name
from flotilla.snapshots.diff.unpack_remove import remove_all
from flotilla.snapshots.diff.unpack_tar import BLK, CHR, DIR, FIFO, LNK, REG, SYM, TarReader
from flotilla.snapshots.diff.unpack_tar_fields import Member

__all__ = ["KNOWN_TYPES", "Tracker", "Writer", "set_dir_times"]

KNOWN_TYPES: Final = frozenset((REG, DIR, SYM, LNK, CHR, BLK, FIFO))
_NODES: Final = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK, FIFO: stat.S_IFIFO}
_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_TIME: Final = (1 << 63) - 1
_OVERLAY_XATTRS: Final = "trusted.overlay."

T = TypeVar("T")


@dataclass(slots=True)
class Tracker:
    """What an unpack did: for opaque directories, for directory times, and to undo it.

    Attributes:
        undo: record what undoing needs (the root was not empty).
        unpacked: resolved paths this layer unpacked (kept by a later opaque marker).
        created: resolved paths this unpack created, in order (when ``undo``).
        dir_times: each directory entry's path and ``(atime, mtime)`` in ns.
        merged: directories that existed before, with their metadata (when ``undo``).
        opaqued: directories that this unpack made opaque (overlay whiteouts).
    """

    undo: bool
    unpacked: set[str] = field(default_factory=set)
    created: list[tuple[str, ...]] = field(default_factory=list)
    dir_times: list[tuple[tuple[str, ...], int, int]] = field(default_factory=list)
    merged: list[tuple[tuple[str, ...], os.stat_result]] = field(default_factory=list)
    opaqued: list[tuple[str, ...]] = field(default_factory=list)

    def made(self, path: tuple[str, ...]) -> None:
        """``path`` did not exist before this unpack."""
        if self.undo:
            self.created.append(path)


class Writer:
    """Writes members into directories of ``root``.

    Args:
        root: the unpack's root.
        reader: where member data comes from.
        track: what is recorded.
        overlay_xattrs: whether ``trusted.overlay.*`` attributes of the layer are kept. An
            overlay's upper directory is written directly, and there such attributes would
            be overlayfs' own metadata (redirects, metacopy): a layer may not forge them.
    """

    def __init__(
        self, root: Root, reader: TarReader, track: Tracker, *, overlay_xattrs: bool
    ) -> None:
        self.root = root
        self.track = track
        self._reader = reader
        self._overlay_xattrs = overlay_xattrs

    def write(self, member: Member, parent: Dir, name: str) -> None:
        """Create ``member`` as ``name`` in ``parent``, replacing what is there."""
        kind = member.type
        if kind == REG:
            self._file(member, parent, name)
        elif kind == DIR:
            self._directory(member, parent, name)
        elif kind == SYM:
            self._symlink(member, parent, name)
        elif kind == LNK:
            self._hardlink(member, parent, name)
        else:
            self._node(member, parent, name)

    def whiteout_device(self, member: Member, parent: Dir, name: str) -> None:
        """An overlayfs whiteout: a 0/0 character device owned as the marker was."""
        self.make(parent, name, lambda: os.mknod(name, stat.S_IFCHR, 0, dir_fd=parent.fd))
        self.track.made((*parent.path, name))
        os.chown(name, member.uid, member.gid, dir_fd=parent.fd, follow_symlinks=False)

    def make(self, parent: Dir, name: str, create: Callable[[], T]) -> T:
        """``create()``, again after removing what is in the way if it failed with EEXIST."""
        try:
            return create()
        except FileExistsError:
            self.remove(parent, name)
            return create()

    def remove(self, parent: Dir, name: str) -> None:
        """Remove ``name`` from ``parent`` whatever it is (a directory with its contents)."""
        if remove_all(parent.fd, name):
            self.root.forget()

    def _file(self, member: Member, parent: Dir, name: str) -> None:
        # Created with its permission bits, so that most files need no fchmod afterwards.
        mode = member.mode & 0o777
        try:
            fd = os.open(name, _FILE_FLAGS, mode, dir_fd=parent.fd)
        except FileExistsError:
            self.remove(parent, name)
            fd = os.open(name, _FILE_FLAGS, mode, dir_fd=parent.fd)
        if self.track.undo:
            self.track.made((*parent.path, name))
        try:
            if member.sparse is None:
                self._data(fd, member.size)
            else:
                for offset, length in member.sparse:
                    at = offset
                    for chunk in self._reader.chunks(length):
                        _pwrite_all(fd, chunk, at)
                        at += len(chunk)
                os.ftruncate(fd, member.size)  # the holes are never written
            self._owner_mode(fd, member, fd)
            os.utime(fd, ns=_times(member))
        finally:
            os.close(fd)

    def _data(self, fd: int, size: int) -> None:
        whole = self._reader.whole(size)
        if whole is None:
            for chunk in self._reader.chunks(size):
                _write_all(fd, chunk)
        elif whole:
            written = os.write(fd, whole)
            if written < size:
                _write_all(fd, whole[written:])

    def _directory(self, member: Member, parent: Dir, name: str) -> None:
        path = (*parent.path, name)
        try:
            os.mkdir(name, member.mode & 0o777, dir_fd=parent.fd)
            merged = False
        except FileExistsError:
            merged = stat.S_ISDIR(os.stat(name, dir_fd=parent.fd, follow_symlinks=False).st_mode)
            if not merged:
                self.remove(parent, name)
                os.mkdir(name, member.mode & 0o777, dir_fd=parent.fd)
        if not merged:
            self.track.made(path)
        fd = os.open(name, DIR_FLAGS, dir_fd=parent.fd)
        try:
            info = os.fstat(fd)
            if merged and self.track.undo:
                self.track.merged.append((path, info))
            self._owner_mode(fd, member, fd, info)
        finally:
            os.close(fd)
        self.track.dir_times.append((path, *_times(member)))

    def _symlink(self, member: Member, parent: Dir, name: str) -> None:
        if not member.linkname:
            raise errdefs.InvalidArgument(f"layer entry {member.name!r}: empty symlink target")
        self.make(parent, name, lambda: os.symlink(member.linkname, name, dir_fd=parent.fd))
        self.track.made((*parent.path, name))
        os.chown(name, member.uid, member.gid, dir_fd=parent.fd, follow_symlinks=False)
        self._xattrs(f"/proc/self/fd/{parent.fd}/{name}", member, plain=False)
        os.utime(name, ns=_times(member), dir_fd=parent.fd, follow_symlinks=False)

    def _hardlink(self, member: Member, parent: Dir, name: str) -> None:
        """A second name for a file unpacked before; its metadata is the file's own."""
        entry = member.name
        parts = split_name(member.linkname, entry)
        target = self.root.parent(parts, entry, create=False) if parts else None
        if target is None:
            raise _missing_target(member)
        source = parts[-1]
        try:
            info = os.stat(source, dir_fd=target.fd, follow_symlinks=False)
        except FileNotFoundError:
            raise _missing_target(member) from None
        if stat.S_ISDIR(info.st_mode):
            raise errdefs.InvalidArgument(f"layer entry {entry!r}: hard link to a directory")

        def link() -> None:
            os.link(source, name, src_dir_fd=target.fd, dst_dir_fd=parent.fd, follow_symlinks=False)

        try:
            self.make(parent, name, link)
        except FileNotFoundError:  # it was its own target, removed to make room
            raise _missing_target(member) from None
        self.track.made((*parent.path, name))

    def _node(self, member: Member, parent: Dir, name: str) -> None:
        kind = _NODES[member.type]
        device = 0 if member.type == FIFO else os.makedev(*member.device)
        self.make(parent, name, lambda: os.mknod(name, kind | 0o600, device, dir_fd=parent.fd))
        self.track.made((*parent.path, name))
        os.chown(name, member.uid, member.gid, dir_fd=parent.fd, follow_symlinks=False)
        self._xattrs(f"/proc/self/fd/{parent.fd}/{name}", member, plain=False)
        os.chmod(name, member.mode, dir_fd=parent.fd)  # the node just made: not a symlink
        os.utime(name, ns=_times(member), dir_fd=parent.fd, follow_symlinks=False)

    def _owner_mode(
        self, fd: int, member: Member, target: int, info: os.stat_result | None = None
    ) -> None:
        """Owner, extended attributes and mode, on the file or directory open as ``fd``.

        ``fchown`` and ``fchmod`` are skipped when ``fstat`` (or ``info``, taken since the
        last change) shows the owner and the mode already right: whatever the kernel made
        of the creation (umask, a default ACL, a setgid directory) shows there. An entry
        with extended attributes takes every step, in containerd's order.
        """
        if member.xattrs:
            os.fchown(fd, member.uid, member.gid)
            self._xattrs(target, member, plain=True)
            os.fchmod(fd, member.mode)
            return
        if info is None:
            info = os.fstat(fd)
        chowned = info.st_uid != member.uid or info.st_gid != member.gid
        if chowned:  # which may clear setuid and setgid bits: the mode comes after
            os.fchown(fd, member.uid, member.gid)
        if chowned or stat.S_IMODE(info.st_mode) != member.mode:
            os.fchmod(fd, member.mode)

    def _xattrs(self, target: int | str, member: Member, *, plain: bool) -> None:
        """Set the member's extended attributes on ``target``.

        ``target`` is a descriptor, or a path whose last component is not followed. As
        containerd: attributes the file system does not support are skipped, and so are
        ``user.*`` ones on what is neither a file nor a directory (the kernel refuses them).
        """
        for key, value in member.xattrs.items():
            if key.startswith(_OVERLAY_XATTRS) and not self._overlay_xattrs:
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as err:
                user_on_special = err.errno == errno.EPERM and key.startswith("user.") and not plain
                if err.errno != errno.ENOTSUP and not user_on_special:
                    raise


def set_dir_times(root: int, times: list[tuple[tuple[str, ...], int, int]]) -> None:
    """Give directories their times, last, as nothing more changes inside them.

    A directory replaced by something else since is skipped (no symlink is followed).
    """
    dirs = PlainDirs(root)
    try:
        for path, atime, mtime in times:
            fd = dirs.get(path)
            if fd is not None and path:
                os.utime(fd, ns=(atime, mtime))
    finally:
        dirs.close()


def _times(member: Member) -> tuple[int, int]:
    """``(atime, mtime)`` in ns, as containerd's ``boundTime`` and ``latestTime`` make them.

    Out-of-range times become the epoch, and atime is never earlier than mtime.
    """
    mtime = member.mtime_ns if 0 <= member.mtime_ns <= _MAX_TIME else 0
    atime = member.atime_ns if member.atime_ns is not None else mtime
    atime = atime if 0 <= atime <= _MAX_TIME else 0
    return max(atime, mtime), mtime


def _missing_target(member: Member) -> errdefs.InvalidArgument:
    return errdefs.InvalidArgument(
        f"layer entry {member.name!r}: hard link target {member.linkname!r} is missing"
    )


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written
