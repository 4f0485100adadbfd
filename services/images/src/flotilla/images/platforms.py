"""OCI platforms as containerd reads and matches them (``containerd/platforms``).

``linux/amd64``, ``linux/arm64/v8``, ``arm`` (the OS defaults to this node's) are parsed and
normalized (``x86_64`` is ``amd64``, ``aarch64`` is ``arm64``, ``armhf`` is ``arm/v7``,
``arm64`` drops a ``v8`` variant). :func:`only` is containerd's ``platforms.Only``: a platform
and what it can run, best first (``arm/v7`` also runs ``v6`` and ``v5`` images; ``arm64``
also runs ``arm/v8``..``v5``; ``amd64`` also ``386``), so an index's manifests are ranked
with :meth:`Matcher.rank`.
"""

from __future__ import annotations

import platform as host
import re
from dataclasses import dataclass
from typing import Final

from flotilla.common.errdefs import InvalidArgument

__all__ = ["Matcher", "Platform", "default", "only", "parse"]

_OS: Final = {"macos": "darwin"}
_ARCH: Final = {
    "i386": ("386", ""),
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
}
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Platform:
    """An OS, an architecture and its variant (empty when it has none)."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


def normalize(platform: Platform) -> Platform:
    """``platform`` as containerd spells it."""
    os = _OS.get(platform.os.lower(), platform.os.lower())
    arch, variant = platform.architecture.lower(), platform.variant.lower()
    if arch in _ARCH:
        arch, implied = _ARCH[arch]
        variant = variant or implied
    if arch == "arm64" and variant == "v8":
        variant = ""
    if arch == "arm":
        variant = "v7" if variant in ("", "7") else variant
        variant = "v" + variant if variant in ("5", "6", "8") else variant
    if arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(os, arch, variant)


def default() -> Platform:
    """This node's platform."""
    return normalize(Platform("linux", host.machine()))


def parse(text: str) -> Platform:
    """``os[/arch[/variant]]`` or ``arch[/variant]``, normalized.

    Raises:
        InvalidArgument: naming ``text`` when it is not a platform.
    """
    parts = text.split("/")
    if not text or len(parts) > 3 or not all(_TOKEN.fullmatch(part) for part in parts):
        raise InvalidArgument(f"{text!r}: invalid platform (want os[/arch[/variant]])")
    if len(parts) == 1:
        first = parts[0].lower()
        if first in ("linux", "windows", "darwin", "freebsd", "macos"):
            return normalize(Platform(first, default().architecture, default().variant))
        return normalize(Platform("linux", first))
    if len(parts) == 2 and _is_arch(parts[0]):
        return normalize(Platform("linux", parts[0], parts[1]))
    return normalize(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def _is_arch(word: str) -> bool:
    return word.lower() in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"} | set(
        _ARCH
    )


@dataclass(frozen=True)
class Matcher:
    """The platforms one node can run, best first."""

    platforms: tuple[Platform, ...]

    def match(self, platform: Platform) -> bool:
        """Whether ``platform`` can run here."""
        return normalize(platform) in self.platforms

    def rank(self, platform: Platform) -> int | None:
        """0 for the best match, higher for worse ones, None for none."""
        try:
            return self.platforms.index(normalize(platform))
        except ValueError:
            return None


_ARM_DOWN: Final = ("v8", "v7", "v6", "v5")


def only(platform: Platform) -> Matcher:
    """``platform`` and the older ones it runs, as containerd's ``platforms.Only``."""
    wanted = normalize(platform)
    found = [wanted]
    if wanted.architecture == "arm64":
        found += [Platform(wanted.os, "arm", variant) for variant in _ARM_DOWN]
    elif wanted.architecture == "arm" and wanted.variant in _ARM_DOWN:
        start = _ARM_DOWN.index(wanted.variant) + 1
        found += [Platform(wanted.os, "arm", variant) for variant in _ARM_DOWN[start:]]
    elif wanted.architecture == "amd64":
        level = int(wanted.variant[1:]) if wanted.variant[1:].isdigit() else 1
        found += [Platform(wanted.os, "amd64", f"v{v}") for v in range(level - 1, 1, -1)]
        found += [Platform(wanted.os, "amd64"), Platform(wanted.os, "386")]
    return Matcher(tuple(dict.fromkeys(normalize(p) for p in found)))
