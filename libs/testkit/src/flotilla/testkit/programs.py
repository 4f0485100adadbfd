"""The external programs the kit runs, and one clear error when one of them is missing.

``make test`` installs them all from ``tools/debian-packages``; this module only says, in one
line, which one is missing and where it comes from, instead of a ``FileNotFoundError`` deep in
a traceback (or a wait for a daemon that never started).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

__all__ = ["PACKAGES", "MissingProgram", "require", "require_file"]

PACKAGES: Final[dict[str, str]] = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "busybox": "busybox-static",
    "umount": "mount",
    "ip": "iproute2",
    "docker": "docker.io",
    "dockerd": "docker.io",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
}
"""Program -> the Debian 12 package that provides it (all of them are in tools/debian-packages)."""


class MissingProgram(FileNotFoundError):
    """An external program the caller needs is not installed; the message names it.

    A ``FileNotFoundError``, as exec's own would be, so ``except OSError`` still catches it.

    Attributes:
        programs: The missing programs (names or paths).
    """

    def __init__(self, programs: list[str], where: str | None = None) -> None:
        self.programs = programs
        if where is None:
            where = "on PATH" if all("/" not in program for program in programs) else ""
        packages = sorted({PACKAGES[n] for n in (Path(p).name for p in programs) if n in PACKAGES})
        message = f"{', '.join(programs)}: not found {where}".rstrip()
        if packages:
            plural = len(packages) > 1
            message += (
                f"; `make test` installs {'them' if len(programs) > 1 else 'it'}"
                f" (Debian package{'s' if plural else ''} {', '.join(packages)})"
            )
        super().__init__(message)


def require(*programs: str) -> list[str]:
    """The full paths of ``programs`` (names looked up on ``PATH``, or paths).

    Raises:
        MissingProgram: One or more of them are not there; the message names every one.
    """
    found = [shutil.which(program) for program in programs]
    missing = [program for program, path in zip(programs, found, strict=True) if path is None]
    if missing:
        raise MissingProgram(missing)
    return [path for path in found if path is not None]


def require_file(path: Path, program: str) -> Path:
    """``path`` if it is a file (a program the kit reads rather than runs, like busybox).

    Raises:
        MissingProgram: ``path`` does not exist; the message names ``program`` and ``path``.
    """
    if not path.is_file():
        raise MissingProgram([program], where=f"at {path}")
    return path
