"""Find and detach mounts a daemon left under its directory."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from flotilla.testkit.programs import require

__all__ = ["mounts_under", "unmount_under"]

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    r"""Mountinfo escapes space, tab, newline and backslash as ``\ooo``."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory``, deepest first."""
    base = directory.resolve()
    found: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(_unescape(line.split(" ")[4]))
        if point == base or base in point.parents:
            found.append(point)
    return sorted(set(found), key=lambda path: len(path.parts), reverse=True)


def unmount_under(directory: Path) -> None:
    """Lazily and recursively unmount everything below ``directory``; best effort.

    Synchronous on purpose: it runs in teardown, also after a cancellation.

    Raises:
        MissingProgram: there are mounts but no ``umount`` (the caller must then not delete
            the directory: that would reach through the mounts).
    """
    points = mounts_under(directory)
    umount = require("umount")[0] if points else "umount"
    for point in points:
        subprocess.run(
            [umount, "--recursive", "--lazy", str(point)],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
