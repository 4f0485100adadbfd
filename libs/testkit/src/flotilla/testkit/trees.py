"""Compare two file-system trees entry by entry: a manifest of each, and their differences.

Usage::

    theirs, ours = manifest(containerd_root), manifest(our_root)
    for line in diff_manifests(theirs, ours, "containerd", "flotilla"):
        print(line)  # e.g. "/etc/passwd: mode containerd 0644, flotilla 0600"

A manifest maps every path under the root (``/`` for the root itself, then ``/bin``, ...) to
an :class:`Entry`: its type, permission bits, owner, size and SHA-256 of a regular file's
content, a symlink's target, a device's number, every extended attribute the caller can read
(``user.*``, ``trusted.*``, ``security.*``), its hard-link group, and the modification time
of anything but a directory (a directory's changes as its children are written and deleted,
so two correct unpackers may leave different ones). Nothing is followed: symlinks are
entries, and the walk stays on the paths under the root. Reading trees is blocking.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["Entry", "Manifest", "diff_manifests", "manifest"]

_READ = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a tree, as far as an image's unpacked root file system is concerned.

    Attributes:
        kind: ``dir``, ``file``, ``symlink``, ``char``, ``block``, ``fifo`` or ``socket``.
        mode: the permission bits with set-user-ID, set-group-ID and sticky (octal in diffs).
        uid: the owner.
        gid: the group.
        size: a regular file's length; 0 for the others.
        sha256: a regular file's content digest (hex); empty for the others.
        target: a symlink's target, as stored; empty for the others.
        rdev: a device's ``(major, minor)``; ``(0, 0)`` for the others.
        xattrs: every extended attribute, sorted by name.
        link_group: the first path (sorted) of the paths sharing this inode in the tree;
            empty for an inode with one path. Directories have none.
        mtime_ns: the modification time of anything but a directory; ``None`` for those.
    """

    kind: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    sha256: str = ""
    target: str = ""
    rdev: tuple[int, int] = (0, 0)
    xattrs: tuple[tuple[str, bytes], ...] = ()
    link_group: str = ""
    mtime_ns: int | None = None


Manifest = Mapping[str, Entry]
"""Every path of a tree (``/``, ``/bin``, ``/bin/sh``, ...) to its :class:`Entry`."""


def manifest(root: Path) -> dict[str, Entry]:
    """Walk the tree under ``root`` (blocking) into a manifest, sorted by path."""
    found: dict[str, tuple[os.stat_result, Path]] = {}
    for name, path, status in _walk(root, "/"):
        found[name] = (status, path)
    groups = _link_groups(found)
    return {
        name: _entry(path, status, groups.get(name, ""))
        for name, (status, path) in sorted(found.items())
    }


def _walk(path: Path, name: str) -> Iterator[tuple[str, Path, os.stat_result]]:
    status = path.lstat()
    yield name, path, status
    if stat.S_ISDIR(status.st_mode):
        prefix = name.rstrip("/")
        with os.scandir(path) as entries:
            children = sorted(entry.name for entry in entries)
        for child in children:
            yield from _walk(path / child, f"{prefix}/{child}")


def _link_groups(found: Mapping[str, tuple[os.stat_result, Path]]) -> dict[str, str]:
    """Each path whose inode has other paths in the tree, to the first of them (sorted)."""
    by_inode: dict[tuple[int, int], list[str]] = defaultdict(list)
    for name, (status, _) in found.items():
        if not stat.S_ISDIR(status.st_mode):
            by_inode[(status.st_dev, status.st_ino)].append(name)
    groups: dict[str, str] = {}
    for names in by_inode.values():
        if len(names) > 1:
            first = min(names)
            groups.update((name, first) for name in names)
    return groups


def _entry(path: Path, status: os.stat_result, link_group: str) -> Entry:
    mode = status.st_mode
    kind = next(kind for test, kind in _KINDS if test(mode))
    is_device = stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
    return Entry(
        kind=kind,
        mode=stat.S_IMODE(mode),
        uid=status.st_uid,
        gid=status.st_gid,
        size=status.st_size if kind == "file" else 0,
        sha256=_sha256(path) if kind == "file" else "",
        target=os.readlink(path) if kind == "symlink" else "",
        rdev=(os.major(status.st_rdev), os.minor(status.st_rdev)) if is_device else (0, 0),
        xattrs=_xattrs(path),
        link_group=link_group,
        mtime_ns=None if kind == "dir" else status.st_mtime_ns,
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def _xattrs(path: Path) -> tuple[tuple[str, bytes], ...]:
    names = os.listxattr(path, follow_symlinks=False)
    return tuple((name, os.getxattr(path, name, follow_symlinks=False)) for name in sorted(names))


def diff_manifests(
    left: Manifest, right: Manifest, left_label: str = "left", right_label: str = "right"
) -> list[str]:
    """The differences between two manifests, one readable line each; empty when equal.

    Lines name the path first: ``/data/x: only in right (file)`` or
    ``/etc/passwd: mode left 0644, right 0600``.
    """
    lines: list[str] = []
    for name in sorted(left.keys() | right.keys()):
        mine, theirs = left.get(name), right.get(name)
        if mine is None and theirs is not None:
            lines.append(f"{name}: only in {right_label} ({theirs.kind})")
        elif theirs is None and mine is not None:
            lines.append(f"{name}: only in {left_label} ({mine.kind})")
        elif mine is not None and theirs is not None and mine != theirs:
            lines += _entry_differences(name, mine, theirs, left_label, right_label)
    return lines


def _entry_differences(
    name: str, left: Entry, right: Entry, left_label: str, right_label: str
) -> list[str]:
    lines = []
    for field in fields(Entry):
        mine, theirs = getattr(left, field.name), getattr(right, field.name)
        if mine != theirs:
            shown = _show(field.name, mine), _show(field.name, theirs)
            lines.append(f"{name}: {field.name} {left_label} {shown[0]}, {right_label} {shown[1]}")
    return lines


def _show(field: str, value: object) -> str:
    if field == "mode" and isinstance(value, int):
        return f"{value:04o}"
    if field == "xattrs" and isinstance(value, tuple):
        return "{" + ", ".join(f"{key}={data!r}" for key, data in value) + "}"
    return repr(value)
