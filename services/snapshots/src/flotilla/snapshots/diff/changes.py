"""The changes from a lower tree to an upper one, as containerd's ``fs.Changes`` finds them.

Two ways to find them (both blocking generators: iterate them in a worker thread):

- :func:`double_walk` walks both trees side by side (containerd's ``doubleWalkDiff``); with no
  lower tree, every path of the upper one is added.
- :func:`overlay_changes` walks only an overlay's upper directory (containerd's
  ``DiffDirChanges`` for overlayfs): what is there changed, a 0/0 character device is a
  deletion and a directory with ``trusted.overlay.opaque=y`` hides the lower ones' children.

Changes come in the order of a walk that visits each directory's entries sorted by their
bytes, a directory before its children (paths compare component by component). Paths are
relative to the roots, ``/``-separated, e.g. ``etc/passwd``.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "OVERLAY_XATTR_PREFIX",
    "Change",
    "Kind",
    "UnsupportedUpper",
    "double_walk",
    "overlay_changes",
    "xattrs",
]

OVERLAY_XATTR_PREFIX: Final = "trusted.overlay."
"""overlayfs keeps its own bookkeeping in these xattrs: never part of a layer."""

_OPAQUE: Final = OVERLAY_XATTR_PREFIX + "opaque"
# A renamed lower directory (redirect_dir) or a copy-up of metadata only (metacopy): the
# upper directory alone no longer tells what changed.
_UNSUPPORTED: Final = (OVERLAY_XATTR_PREFIX + "redirect", OVERLAY_XATTR_PREFIX + "metacopy")
_CHUNK: Final = 1 << 20


class Kind(enum.Enum):
    """What happened to a path."""

    UNMODIFIED = "unmodified"
    """The same on both sides, reported only for a file with other hard links, so that a
    layer can link a changed path to it (containerd's ``isLinked``)."""
    ADD = "add"
    MODIFY = "modify"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One changed path.

    Attributes:
        kind: what happened.
        path: relative to the roots, ``/``-separated (``a/b``).
        stat: the upper tree's ``lstat`` of the path; ``None`` for a deletion.
        opaque: a directory that hides everything the lower trees have below it (overlay);
            a layer marks it with ``<dir>/.wh..wh..opq``.
    """

    kind: Kind
    path: str
    stat: os.stat_result | None = None
    opaque: bool = False


class UnsupportedUpper(Exception):
    """The overlay's upper directory uses a feature the fast path cannot read (walk both)."""


def xattrs(path: str) -> dict[str, bytes]:
    """The extended attributes of ``path`` (not following a symlink), overlay's own left out."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.ENOSYS):  # a file system without xattrs
            return {}
        raise
    return {
        name: os.getxattr(path, name, follow_symlinks=False)
        for name in sorted(names)
        if not name.startswith(OVERLAY_XATTR_PREFIX)
    }


@dataclass(frozen=True, slots=True)
class _Descend:
    """Walk into ``rel``: compare it with ``lower`` (``None``: everything below is added)."""

    rel: str
    upper: str
    lower: str | None


_Step = Callable[[_Descend], Iterator["Change | _Descend"]]
"""Lists one directory: its changes, and the directories to walk into."""


def _walk(first: _Descend, step: _Step) -> Iterator[Change]:
    """Depth-first, with a stack of directory iterators (trees may be deeper than recursion)."""
    stack = [step(first)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, _Descend):
            stack.append(step(item))
        else:
            yield item


def _names(directory: str) -> list[bytes]:
    """A directory's entry names, sorted by their bytes (as containerd's walk sorts them)."""
    return sorted(os.listdir(os.fsencode(directory)))


def _join(rel: str, name: bytes) -> str:
    text = os.fsdecode(name)
    return f"{rel}/{text}" if rel else text


def double_walk(lower: Path | None, upper: Path) -> Iterator[Change]:
    """The changes from the tree ``lower`` to the tree ``upper`` (containerd's ``fs.Changes``).

    A path only in ``upper`` is added (and so is everything below it); a path only in
    ``lower`` is deleted (its children are not reported). A path on both sides is modified
    when its type, mode, owner, size, device number, link target, xattrs or modification time
    differ, or, when both times have zero nanoseconds (a tar's whole seconds), when the
    contents differ. A directory's size and time do not count: a directory whose children
    changed is not itself changed.

    Args:
        lower: the lower tree's root, or ``None`` for an empty tree.
        upper: the upper tree's root.
    """
    return _walk(_Descend("", str(upper), None if lower is None else str(lower)), _both)


def _both(item: _Descend) -> Iterator[Change | _Descend]:
    if item.lower is None:
        return _added_children(item)
    return _compared_children(item.rel, item.lower, item.upper)


def _added_children(item: _Descend) -> Iterator[Change | _Descend]:
    for name in _names(item.upper):
        rel, path = _join(item.rel, name), os.path.join(item.upper, os.fsdecode(name))
        info = os.lstat(path)
        yield Change(Kind.ADD, rel, info)
        if stat.S_ISDIR(info.st_mode):
            yield _Descend(rel, path, None)


def _compared_children(rel: str, lower: str, upper: str) -> Iterator[Change | _Descend]:
    """Merge the two sorted listings of a directory both trees have."""
    lowers, uppers = _names(lower), _names(upper)
    i = j = 0
    while i < len(lowers) or j < len(uppers):
        if j == len(uppers) or (i < len(lowers) and lowers[i] < uppers[j]):
            yield Change(Kind.DELETE, _join(rel, lowers[i]))
            i += 1
            continue
        name, child = uppers[j], _join(rel, uppers[j])
        path = os.path.join(upper, os.fsdecode(name))
        info = os.lstat(path)
        if i < len(lowers) and lowers[i] == name:
            yield from _compared_one(child, os.path.join(lower, os.fsdecode(name)), path, info)
            i += 1
        else:
            yield Change(Kind.ADD, child, info)
            if stat.S_ISDIR(info.st_mode):
                yield _Descend(child, path, None)
        j += 1


def _compared_one(
    rel: str, lower: str, upper: str, info: os.stat_result
) -> Iterator[Change | _Descend]:
    """A path both trees have: modified or not, and what to walk below it."""
    before = os.lstat(lower)
    is_dir = stat.S_ISDIR(info.st_mode)
    if _same(lower, before, upper, info):
        if is_dir:
            yield _Descend(rel, upper, lower)
        elif info.st_nlink > 1:
            yield Change(Kind.UNMODIFIED, rel, info)
        return
    yield Change(Kind.MODIFY, rel, info)
    if is_dir:
        # A file replaced by a directory: everything in it is new.
        yield _Descend(rel, upper, lower if stat.S_ISDIR(before.st_mode) else None)


def _same(lower: str, before: os.stat_result, upper: str, after: os.stat_result) -> bool:
    """As containerd's ``sameFile``, with every xattr and the link target compared too."""
    if (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino):
        return True
    if _owner_and_mode(before) != _owner_and_mode(after):
        return False
    device = stat.S_ISCHR(after.st_mode) or stat.S_ISBLK(after.st_mode)
    if device and before.st_rdev != after.st_rdev:
        return False
    if xattrs(lower) != xattrs(upper):
        return False
    if stat.S_ISDIR(after.st_mode):
        return True
    if stat.S_ISLNK(after.st_mode) and os.readlink(lower) != os.readlink(upper):
        return False
    return _same_data(lower, before, upper, after)


def _owner_and_mode(info: os.stat_result) -> tuple[int, int, int]:
    return info.st_mode, info.st_uid, info.st_gid


def _same_data(lower: str, before: os.stat_result, upper: str, after: os.stat_result) -> bool:
    if before.st_size != after.st_size or before.st_mtime_ns != after.st_mtime_ns:
        return False
    if before.st_mtime_ns % 1_000_000_000 != 0:
        return True
    # Whole seconds on both sides, as a tar leaves them: equal times prove nothing.
    if not stat.S_ISREG(after.st_mode) or after.st_size == 0:
        return True
    return _same_content(lower, upper)


def _same_content(first: str, second: str) -> bool:
    with open(first, "rb", buffering=0) as one, open(second, "rb", buffering=0) as two:
        while True:
            left, right = one.read(_CHUNK), two.read(_CHUNK)
            if left != right:
                return False
            if not left:
                return True


def overlay_changes(upperdir: Path, lowerdirs: Sequence[Path] = ()) -> Iterator[Change]:
    """The changes an overlay made, read from its upper directory alone.

    Everything in ``upperdir`` is added (or modified, when a lower directory has the path);
    a 0/0 character device is a deletion; a directory marked opaque is reported with
    ``opaque=True`` (the lower directories' children of it are gone).

    Args:
        upperdir: the overlay's ``upperdir``.
        lowerdirs: its lower directories (they only tell an addition from a modification).

    Raises:
        UnsupportedUpper: (while iterating) a directory was renamed (``redirect_dir``) or a
            file copied up as metadata only (``metacopy``): walk both trees instead.
    """
    lowers = tuple(str(x) for x in lowerdirs)
    return _walk(_Descend("", str(upperdir), ""), _Upper(lowers))


class _Upper:
    def __init__(self, lowers: tuple[str, ...]) -> None:
        self._lowers = lowers

    def __call__(self, item: _Descend) -> Iterator[Change | _Descend]:
        # item.lower is "" while the lower directories may have the path, None below an
        # opaque or a new directory.
        for name in _names(item.upper):
            rel, path = _join(item.rel, name), os.path.join(item.upper, os.fsdecode(name))
            info = os.lstat(path)
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                yield Change(Kind.DELETE, rel)
                continue
            found = item.lower is not None and self._in_lower(rel)
            kind = Kind.MODIFY if found else Kind.ADD
            marks = _overlay_marks(path)
            if any(mark in marks for mark in _UNSUPPORTED):
                raise UnsupportedUpper(f"{path} is a redirect or a metacopy")
            if not stat.S_ISDIR(info.st_mode):
                yield Change(kind, rel, info)
                continue
            opaque = marks.get(_OPAQUE) == b"y"
            yield Change(kind, rel, info, opaque=opaque)
            yield _Descend(rel, path, "" if found and not opaque else None)

    def _in_lower(self, rel: str) -> bool:
        return any(os.path.lexists(os.path.join(lower, rel)) for lower in self._lowers)


def _overlay_marks(path: str) -> dict[str, bytes]:
    names = os.listxattr(path, follow_symlinks=False)
    return {
        name: os.getxattr(path, name, follow_symlinks=False)
        for name in names
        if name.startswith(OVERLAY_XATTR_PREFIX)
    }
