"""containerd's ``Mount`` record and what callers read from its options."""

from __future__ import annotations

import msgspec

__all__ = ["Mount", "lower_dirs", "option_value", "read_only"]


class Mount(msgspec.Struct, frozen=True, kw_only=True):
    """One mount, as ``mount -t <type> -o <options> <source> <target>`` would make it.

    Attributes:
        type: ``bind``, ``overlay``, ... (the file system type).
        source: what is mounted (a directory for ``bind``; ``overlay`` for overlays).
        target: where, relative to the root the mounts are mounted on; empty means the root.
        options: ``ro``, ``rbind``, ``lowerdir=...``, ``upperdir=...``, ``workdir=...``.
    """

    type: str
    source: str
    target: str = ""
    options: tuple[str, ...] = ()


def option_value(mount: Mount, key: str) -> str | None:
    """The value of ``key=value`` in ``mount``'s options, or ``None``."""
    prefix = f"{key}="
    for option in mount.options:
        if option.startswith(prefix):
            return option[len(prefix) :]
    return None


def lower_dirs(mount: Mount) -> list[str]:
    """An overlay's lower directories, topmost first (``lowerdir=a:b:c``)."""
    value = option_value(mount, "lowerdir")
    return value.split(":") if value else []


def read_only(mount: Mount) -> bool:
    """Whether ``mount`` is mounted read-only."""
    return "ro" in mount.options
