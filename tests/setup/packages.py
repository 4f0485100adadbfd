"""tools/debian-packages, read the way tools/setup reads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIST = REPO / "tools" / "debian-packages"


@dataclass(frozen=True)
class Package:
    """One line: the package, who needs it (``run`` or ``test``), the programs it provides."""

    name: str
    used_by: str
    programs: tuple[str, ...]


def packages(path: Path = LIST) -> list[Package]:
    """Every package of the list, in order."""
    found = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            found.append(Package(fields[0], fields[1], tuple(fields[2:])))
    return found


def programs(target: str = "test") -> dict[str, str]:
    """Program -> package, for ``make run`` (``target="run"``) or ``make test``."""
    return {
        program: package.name
        for package in packages()
        if target == "test" or package.used_by == "run"
        for program in package.programs
    }
