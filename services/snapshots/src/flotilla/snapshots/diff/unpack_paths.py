"""Finding a layer entry's directory beneath the root, one component at a time (blocking).

No path is ever handed to the kernel whole: every component is opened with ``openat(2)``
relative to its parent's file descriptor, with ``O_NOFOLLOW | O_DIRECTORY``, starting from
the root's. A symlink met on the way is read and followed by hand, as the container will see
it: an absolute target starts again at the root, ``..`` goes up one directory, and a target
that would climb above the root is refused. So an entry can neither name nor reach anything
outside the root, whatever symlinks earlier entries (or earlier layers) left in the tree.

Directories found are cached by archive path (layers list a directory's files together).
The cache is dropped whenever the unpacker removes a directory or a symlink, so a directory
replaced mid-layer is looked up afresh.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from flotilla.common import errdefs

__all__ = ["DIR_FLAGS", "Dir", "PlainDirs", "Root", "split_name"]

DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How a directory below the root is opened: never through a symlink."""

_MAX_LINKS: Final = 40  # symlinks followed for one path, as the kernel's limit
_MAX_CACHED: Final = 256
_LOOK_UP: Final = 4  # levels up the cache is searched for a place to start from


def split_name(name: str, entry: str) -> list[str]:
    """The components of archive path ``name`` (``.`` and empty ones dropped).

    Raises:
        InvalidArgument: an absolute path, a ``..`` component or a NUL, naming ``entry``.
    """
    parts = name.split("/")
    if "" in parts or "." in parts:  # a directory's trailing slash, mostly
        parts = [part for part in parts if part and part != "."]
    if not name.startswith("/") and "\x00" not in name and ".." not in parts:
        return parts
    which = "" if name == entry else f" {name!r}"
    if name.startswith("/"):
        raise errdefs.InvalidArgument(f"layer entry {entry!r}: absolute path{which}")
    if "\x00" in name:
        raise errdefs.InvalidArgument(f"layer entry {entry!r}: NUL in path{which}")
    raise errdefs.InvalidArgument(f"layer entry {entry!r}: '..' in path{which}")


@dataclass(frozen=True, slots=True)
class Dir:
    """A directory below (or at) the root.

    Attributes:
        fd: open on the directory; owned by the :class:`Root` that answered it.
        path: its components below the root, symlinks resolved (``()`` is the root).
    """

    fd: int
    path: tuple[str, ...]


class Root:
    """The root directory of an unpack, and the directories below it.

    Args:
        path: the root (trusted: it is opened as given).
        on_mkdir: told the path of every directory created while looking up parents.
    """

    def __init__(self, path: Path, on_mkdir: Callable[[tuple[str, ...]], None]) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.path = path
        self._on_mkdir = on_mkdir
        self._cache: dict[str, Dir] = {}
        self._stale = False

    def close(self) -> None:
        """Close every descriptor, the root's last."""
        self._clear()
        os.close(self.fd)

    def forget(self) -> None:
        """Drop the cache before the next entry: a directory or a symlink was removed.

        Deferred, so that the entry being unpacked keeps its directories open.
        """
        self._stale = True

    def tidy(self) -> None:
        """Between entries: close what :meth:`forget` dropped, or what overflows the cache."""
        if self._stale or len(self._cache) > _MAX_CACHED:
            self._clear()
            self._stale = False

    def parent(self, parts: Sequence[str], entry: str, *, create: bool) -> Dir | None:
        """The directory that holds ``parts[-1]``, creating missing directories if asked.

        Returns:
            The directory, or ``None`` when one is missing and ``create`` is false.

        Raises:
            InvalidArgument: a symlink on the way leads outside the root, a component is not
                a directory, or there are too many symlinks; naming ``entry``.
        """
        dirs = parts[:-1]
        key = "/".join(dirs)
        found = self._cache.get(key)
        if found is None:
            found = self._walk(*self._nearest(dirs), entry, create)
            if found is not None and found.path:
                self._cache[key] = found
        return found

    def made_parent(self, parts: Sequence[str], entry: str) -> Dir:
        """As :meth:`parent`, creating the directories that are missing."""
        found = self.parent(parts, entry, create=True)
        if found is None:  # pragma: no cover - creating never comes back empty-handed
            raise errdefs.Internal(f"layer entry {entry!r}: no parent directory")
        return found

    def _clear(self) -> None:
        for found in self._cache.values():
            os.close(found.fd)
        self._cache.clear()

    def _nearest(self, dirs: Sequence[str]) -> tuple[Dir | None, Sequence[str]]:
        """A cached directory a few levels above ``dirs``, and the rest of the way from it.

        Layers list a tree depth first, so a new directory's grandparent is usually known:
        a deep tree is then walked one level per entry, not from the root every time.
        """
        for up in range(1, min(len(dirs), _LOOK_UP) + 1):
            found = self._cache.get("/".join(dirs[:-up]))
            if found is not None:
                return found, dirs[-up:]
        return None, dirs

    def _walk(
        self, start: Dir | None, parts: Sequence[str], entry: str, create: bool
    ) -> Dir | None:
        """Open the directory ``parts`` names below ``start`` (the root when ``None``).

        One descriptor is held at a time; ``start``'s, owned by the cache, is not used up.
        """
        current = os.dup(start.fd) if start is not None else self.fd
        names = list(start.path) if start is not None else []
        todo = list(reversed(parts))
        links = 0
        try:
            while todo:
                name = todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":  # only symlink targets have these
                    if not names:
                        raise errdefs.InvalidArgument(
                            f"layer entry {entry!r}: a symlink on its path leads outside the root"
                        )
                    names.pop()
                    current = self._replace(current, self.fd)
                    current = self._reopen(names)
                    continue
                opened = self._open(current, name, names, entry, create)
                if opened is None:
                    return None
                if isinstance(opened, int):
                    current = self._replace(current, opened)
                    names.append(name)
                    continue
                links += 1
                if links > _MAX_LINKS:
                    raise errdefs.InvalidArgument(f"layer entry {entry!r}: too many symlinks")
                if opened.startswith("/"):  # absolute: from the root, as in the container
                    current = self._replace(current, self.fd)
                    names.clear()
                todo.extend(reversed(opened.split("/")))
            found, current = Dir(current, tuple(names)), self.fd
            return found
        finally:
            self._replace(current, self.fd)

    def _replace(self, current: int, new: int) -> int:
        if current != self.fd:
            os.close(current)
        return new

    def _reopen(self, names: list[str]) -> int:
        """The directory ``names`` (already resolved: no symlink is followed), from the root."""
        fd = self.fd
        try:
            for name in names:
                fd = self._replace(fd, os.open(name, DIR_FLAGS, dir_fd=fd))
        except BaseException:
            self._replace(fd, self.fd)
            raise
        return fd

    def _open(
        self, parent: int, name: str, names: list[str], entry: str, create: bool
    ) -> int | str | None:
        """The directory ``name`` opened, or a symlink's target; ``None`` if missing."""
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as err:
            if err.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            target = _link_target(parent, name)
            if target is not None:
                return target
            where = "/".join([*names, name])
            raise errdefs.InvalidArgument(
                f"layer entry {entry!r}: {where!r} is not a directory"
            ) from None
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
            self._on_mkdir((*names, name))
        except FileExistsError:
            pass
        return os.open(name, DIR_FLAGS, dir_fd=parent)


def _link_target(parent: int, name: str) -> str | None:
    """The target of symlink ``name``; ``None`` if it is something else."""
    try:
        return os.readlink(name, dir_fd=parent)
    except OSError as err:
        if err.errno == errno.EINVAL:
            return None
        raise


class PlainDirs:
    """Directories below the root by resolved path, following no symlink at all.

    For the end of an unpack (directory times) and its undoing, when the paths are known.

    Args:
        root: the root's descriptor (not closed here).
    """

    def __init__(self, root: int) -> None:
        self._root = root
        self._open: dict[tuple[str, ...], int] = {}

    def close(self) -> None:
        """Close what was opened."""
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()

    def get(self, path: tuple[str, ...]) -> int | None:
        """A descriptor on the directory at ``path``; ``None`` if it is not one any more."""
        if not path:
            return self._root
        found = self._open.get(path)
        if found is not None:
            return found
        if len(self._open) >= _MAX_CACHED:
            self.close()
        depth = len(path) - 1  # start from a cached directory a few levels up, or the root
        while depth and path[:depth] not in self._open:
            depth = depth - 1 if depth > len(path) - _LOOK_UP else 0
        fd = self._open[path[:depth]] if depth else self._root
        owned = -1  # an intermediate directory, closed once its child is open
        try:
            for name in path[depth:]:
                try:
                    fd = os.open(name, DIR_FLAGS, dir_fd=fd)
                except (FileNotFoundError, NotADirectoryError):
                    return None
                except OSError as err:
                    if err.errno == errno.ELOOP:
                        return None
                    raise
                if owned >= 0:
                    os.close(owned)
                owned = fd
            self._open[path] = fd
            owned = -1
            return fd
        finally:
            if owned >= 0:
                os.close(owned)
