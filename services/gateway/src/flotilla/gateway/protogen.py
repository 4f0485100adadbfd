"""containerd's gRPC API as Python modules, generated from its ``.proto`` files on first use.

``grpc_tools.protoc`` compiles every ``.proto`` of containerd's API (and ``google/rpc/status``,
its one third-party import) into the package :data:`PACKAGE`, under a build directory named
after a hash of the protos and of the generator and runtime versions::

    api = containerd_api()  # generated once, then imported from the cache
    containers = containerd_module("services.containers.v1.containers_pb2")
    grpc_stubs = containerd_module("services.containers.v1.containers_pb2_grpc")

protoc names the generated modules after the protos' paths, so they import a top-level
``types`` package (``from types import mount_pb2``) that would shadow Python's own ``types``.
Every import of a generated module is rewritten to go through :data:`PACKAGE` instead.
The wire format does not change: it follows the protos' package, message and service names
(``containerd.services.containers.v1.Containers``), not Python's module paths.

Where things are:

- the protos: ``<repo>/../shared/proto/containerd`` (``api/`` and ``third_party/``), or
  ``$FLOTILLA_PROTO_SOURCE``, or the ``source`` argument;
- the build: ``<repo>/var/build/containerd-api/<hash>/``, or ``$FLOTILLA_PROTO_BUILD/<hash>/``,
  or ``build_root/<hash>/``. A tree is built beside its final place and renamed into it, so
  processes building at once never see half a tree; the first rename wins, the others drop
  theirs.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import google.protobuf  # type: ignore[import-untyped]
import grpc  # type: ignore[import-untyped]
import grpc_tools  # type: ignore[import-untyped]
from grpc_tools import grpc_version, protoc

from flotilla.common import errdefs

__all__ = ["PACKAGE", "build_dir", "containerd_api", "containerd_module", "source_hash"]

PACKAGE = "flotilla_containerd_api"
"""The import name of the generated package."""

_FORMAT = "2"  # bump when the generated tree's layout or rewriting changes
_REPO = Path(__file__).resolve().parents[5]
_DEFAULT_SOURCE = _REPO.parent / "shared" / "proto" / "containerd"
_DEFAULT_BUILD = _REPO / "var" / "build" / "containerd-api"
_ROOTS = ("api", "third_party")  # include roots: the protos import each other relative to them
_FROM = re.compile(r"^from ([\w.]+) import (\w+)", re.MULTILINE)
_IMPORT = re.compile(r"^import ([\w.]+)", re.MULTILINE)
# The module name the message classes are built into (their __module__, used by pickle).
_BUILD = re.compile(r"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')([\w.]+)'")


def containerd_api(*, source: Path | None = None, build_root: Path | None = None) -> ModuleType:
    """The generated package, built first when the cache has no tree for these protos.

    Blocking (a build takes a second or two): call it at start-up or in a thread.

    Args:
        source: The protos' directory (holding ``api/`` and ``third_party/``).
        build_root: Where the trees are cached, one directory per hash.

    Raises:
        NotFound: No protos at ``source``.
        FailedPrecondition: protoc failed, or this process already imported another tree.
    """
    source = _source(source)
    tree = build_dir(source, build_root)
    if not tree.is_dir():
        _build(source, tree)
    return _import(tree)


def containerd_module(
    name: str, *, source: Path | None = None, build_root: Path | None = None
) -> ModuleType:
    """One generated module, named by its path in the API.

    E.g. ``"services.containers.v1.containers_pb2_grpc"`` for the Containers service's stubs.
    """
    package = containerd_api(source=source, build_root=build_root)
    return importlib.import_module(f"{package.__name__}.{name}")


def build_dir(source: Path | None = None, build_root: Path | None = None) -> Path:
    """The directory that holds (or will hold) the tree generated from ``source``."""
    source = _source(source)
    if build_root is None:
        configured = os.environ.get("FLOTILLA_PROTO_BUILD")
        build_root = Path(configured) if configured else _DEFAULT_BUILD
    return build_root / source_hash(source)


def source_hash(source: Path) -> str:
    """A hash of every proto under ``source`` (names and bytes) and of what generates them.

    The generated code checks, on import, that the installed protobuf and grpcio are at least
    the versions it was generated for, so the versions are part of the key.
    """
    digest = hashlib.sha256()
    versions = (_FORMAT, grpc_version.VERSION, google.protobuf.__version__, grpc.__version__)
    for version in versions:
        digest.update(f"{version}\0".encode())
    for path in _protos(source):
        digest.update(f"{path.relative_to(source).as_posix()}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _source(source: Path | None) -> Path:
    if source is None:
        configured = os.environ.get("FLOTILLA_PROTO_SOURCE")
        source = Path(configured) if configured else _DEFAULT_SOURCE
    if not (source / "api").is_dir():
        raise errdefs.NotFound(f"containerd protos {source}: no api/ directory")
    return source


def _protos(source: Path) -> list[Path]:
    return sorted(p for root in _ROOTS for p in (source / root).rglob("*.proto"))


def _build(source: Path, tree: Path) -> None:
    tree.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{tree.name}-", dir=tree.parent))
    try:
        _generate(source, staging / PACKAGE)
        _write_init(staging / PACKAGE, tree.name)
        try:
            staging.rename(tree)
        except OSError:
            if not tree.is_dir():  # not "another process got there first"
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _generate(source: Path, out: Path) -> None:
    """Run protoc into ``out``, then every import of a generated module made package-relative."""
    out.mkdir(parents=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    roots = [source / root for root in _ROOTS if (source / root).is_dir()]
    argv = [
        "grpc_tools.protoc",
        *(f"-I{root}" for root in [*roots, well_known]),
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(p) for p in _protos(source)),
    ]
    if protoc.main(argv) != 0:
        raise errdefs.FailedPrecondition(f"protoc failed on the protos in {source}")
    _rewrite_imports(out)


def _rewrite_imports(out: Path) -> None:
    files = sorted([*out.rglob("*.py"), *out.rglob("*.pyi")])
    generated = {_module_name(out, path) for path in files}

    def from_import(match: re.Match[str]) -> str:
        parent, name = match.groups()
        if f"{parent}.{name}" in generated:
            return f"from {PACKAGE}.{parent} import {name}"
        return match.group(0)

    def plain_import(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"import {PACKAGE}.{name}" if name in generated else match.group(0)

    for path in files:
        text = _IMPORT.sub(plain_import, _FROM.sub(from_import, path.read_text()))
        path.write_text(_BUILD.sub(rf"\g<1>{PACKAGE}.\g<2>'", text))
    for directory in {path.parent for path in files} - {out}:
        (directory / "__init__.py").touch()  # regular packages: no namespace-package merging


def _module_name(out: Path, path: Path) -> str:
    return ".".join(path.relative_to(out).with_suffix("").parts)


def _write_init(package: Path, key: str) -> None:
    (package / "__init__.py").write_text(
        f'"""containerd\'s API, generated by flotilla.gateway.protogen. Do not edit."""\n\n'
        f"SOURCE_HASH = {key!r}\n"
    )


def _import(tree: Path) -> ModuleType:
    """Import the package from ``tree``, or the one already imported if it is the same build."""
    loaded = sys.modules.get(PACKAGE)
    if loaded is None:
        if str(tree) not in sys.path:
            sys.path.insert(0, str(tree))
        return importlib.import_module(PACKAGE)
    if getattr(loaded, "SOURCE_HASH", None) != tree.name:
        raise errdefs.FailedPrecondition(
            f"containerd API {tree}: this process already imported {loaded.__file__}"
        )
    return loaded  # the same protos and generator: the same modules, whichever copy
