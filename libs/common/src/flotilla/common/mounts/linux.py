"""Mounting containerd ``Mount`` records with mount(2) (blocking: call from a worker thread).

Options become mount flags and file-system data as ``mount(8)`` and containerd make them
(``ro``, ``rbind``, ``nosuid``... are flags; the rest is data). A read-only bind is two calls,
the bind and then a read-only remount, as the kernel requires.

An overlay's options can outgrow the one page mount(2) accepts for its data (128 layers of
absolute paths do). Then, as containerd does, the lower directories are written relative to
their common parent and the mount is made by ``mount(8)`` running in that directory, so the
relative paths resolve there and this process's working directory never changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from flotilla.common import errdefs
from flotilla.common.mounts.types import Mount

__all__ = ["mount_all", "temp_mount", "unmount", "unmount_all"]

MS_RDONLY: Final = 0x1
MS_NOSUID: Final = 0x2
MS_NODEV: Final = 0x4
MS_NOEXEC: Final = 0x8
MS_REMOUNT: Final = 0x20
MS_NOATIME: Final = 0x400
MS_NODIRATIME: Final = 0x800
MS_BIND: Final = 0x1000
MS_REC: Final = 0x4000
MS_PRIVATE: Final = 1 << 18
MNT_DETACH: Final = 0x2

_FLAGS: Final = {
    "ro": (MS_RDONLY, True),
    "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True),
    "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True),
    "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True),
    "exec": (MS_NOEXEC, False),
    "noatime": (MS_NOATIME, True),
    "nodiratime": (MS_NODIRATIME, True),
    "bind": (MS_BIND, True),
    "rbind": (MS_BIND | MS_REC, True),
    "remount": (MS_REMOUNT, True),
}
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mount.argtypes = [*[ctypes.c_char_p] * 3, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _parse(options: Sequence[str]) -> tuple[int, list[str]]:
    """Mount flags and the data options left over."""
    flags = 0
    data: list[str] = []
    for option in options:
        known = _FLAGS.get(option)
        if known is None:
            data.append(option)
        elif known[1]:
            flags |= known[0]
        else:
            flags &= ~known[0]
    return flags, data


def _syscall(source: str, target: Path, fstype: str, flags: int, data: str) -> None:
    result = _libc.mount(
        source.encode(), os.fsencode(target), fstype.encode(), flags, data.encode() or None
    )
    if result != 0:
        err = ctypes.get_errno()
        raise errdefs.from_os_error(OSError(err, os.strerror(err)), f"mount {fstype} on {target}")


def _mount_one(mount: Mount, target: Path) -> None:
    flags, data = _parse(mount.options)
    text = ",".join(data)
    if mount.type == "overlay" and len(text) >= _PAGE:
        _mount_compact(mount, target, data)
    elif flags & MS_BIND:
        _syscall(mount.source, target, "none", flags & ~MS_RDONLY, text)
        if flags & MS_RDONLY:
            _syscall("none", target, "none", flags | MS_REMOUNT, "")
    else:
        _syscall(mount.source, target, mount.type, flags, text)


def _mount_compact(mount: Mount, target: Path, data: list[str]) -> None:
    """An overlay whose options exceed a page: lower dirs relative to their common parent."""
    lowers = next((x for x in data if x.startswith("lowerdir=")), "")[len("lowerdir=") :]
    dirs = lowers.split(":")
    common = os.path.commonpath(dirs)
    relative = ":".join(os.path.relpath(x, common) for x in dirs)
    options = [f"lowerdir={relative}" if x.startswith("lowerdir=") else x for x in data]
    flags = [x for x in mount.options if x in _FLAGS]
    text = ",".join(options + flags)
    if len(text) >= _PAGE:
        raise errdefs.InvalidArgument(f"overlay options of {len(text)} bytes exceed a page")
    result = subprocess.run(
        ["mount", "-t", "overlay", "-o", text, mount.source, str(target)],
        cwd=common,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise errdefs.Internal(f"mount overlay on {target}: {message}")


def mount_all(mounts: Sequence[Mount], root: Path) -> None:
    """Mount ``mounts`` in order on ``root`` (each at ``root/<target>``).

    On failure, what was mounted is unmounted again before the error is raised.
    """
    done: list[Path] = []
    try:
        for mount in mounts:
            target = _target(root, mount)
            _mount_one(mount, target)
            done.append(target)
    except BaseException:
        for target in reversed(done):
            unmount(target)
        raise


def unmount_all(mounts: Sequence[Mount], root: Path) -> None:
    """Undo :func:`mount_all`: each mount's target, the last mounted first."""
    for target in reversed([_target(root, mount) for mount in mounts]):
        unmount(target)


def _target(root: Path, mount: Mount) -> Path:
    return root / mount.target.lstrip("/") if mount.target else root


def unmount(target: Path, *, lazy: bool = False) -> None:
    """Unmount everything stacked on ``target``; a target not mounted is no error."""
    flags = MNT_DETACH if lazy else 0
    while True:
        if _libc.umount2(os.fsencode(target), flags) != 0:
            err = ctypes.get_errno()
            if err == 22:  # EINVAL: nothing (more) is mounted there
                return
            raise errdefs.from_os_error(OSError(err, os.strerror(err)), f"unmount {target}")


@contextmanager
def temp_mount(mounts: Sequence[Mount], parent: Path | None = None) -> Iterator[Path]:
    """``mounts`` mounted on a fresh directory for the ``with`` block, then unmounted."""
    directory = Path(tempfile.mkdtemp(prefix="flotilla-mount-", dir=parent))
    try:
        mount_all(mounts, directory)
        try:
            yield directory
        finally:
            unmount_all(mounts, directory)
    finally:
        directory.rmdir()
