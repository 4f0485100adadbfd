"""containerd's API generated into a package of our own, cached by the protos' hash."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.gateway import protogen

CONTAINERS = "services.containers.v1.containers_pb2"
# An import of a generated module that still names it from the top (``from types import ...``).
_TOP_LEVEL = re.compile(r"^(from|import) (types|services|events|runtime|google\.rpc)\b", re.M)


@pytest.fixture
def build_root(tmp_path: Path) -> Iterator[Path]:
    """A build root of its own; the generated package is forgotten afterwards."""
    yield tmp_path / "build"
    tree = str(protogen.build_dir(build_root=tmp_path / "build"))
    for name in [n for n in sys.modules if n.split(".")[0] == protogen.PACKAGE]:
        del sys.modules[name]
    if tree in sys.path:
        sys.path.remove(tree)


def test_the_containers_stub_imports_from_a_generated_tree(build_root: Path) -> None:
    grpc_module = protogen.containerd_module(f"{CONTAINERS}_grpc", build_root=build_root)
    messages = protogen.containerd_module(CONTAINERS, build_root=build_root)

    assert grpc_module.ContainersStub.__module__ == f"{protogen.PACKAGE}.{CONTAINERS}_grpc"
    container = messages.Container(id="c-1", runtime=messages.Container.Runtime(name="runc"))
    assert messages.Container.FromString(container.SerializeToString()) == container
    assert messages.Container.DESCRIPTOR.full_name == "containerd.services.containers.v1.Container"
    tree = protogen.build_dir(build_root=build_root)
    assert Path(grpc_module.__file__).is_relative_to(tree)
    assert types.ModuleType is type(sys)  # Python's own types module is untouched


def test_every_proto_is_generated_with_package_relative_imports(build_root: Path) -> None:
    package = protogen.containerd_api(build_root=build_root)
    out = Path(package.__file__).parent

    for name in ("google.rpc.status_pb2", "services.introspection.v1.introspection_pb2"):
        assert protogen.containerd_module(name, build_root=build_root).DESCRIPTOR
    offending = [
        path.relative_to(out)
        for path in [*out.rglob("*.py"), *out.rglob("*.pyi")]
        if _TOP_LEVEL.search(path.read_text())
    ]
    assert offending == []


def test_a_second_call_reuses_the_cached_tree(
    build_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = protogen.containerd_api(build_root=build_root)
    init = Path(first.__file__)
    stamp = init.stat().st_mtime_ns

    def fail(source: Path, out: Path) -> None:
        raise AssertionError("generated again")

    monkeypatch.setattr(protogen, "_generate", fail)
    assert protogen.containerd_api(build_root=build_root) is first
    assert init.stat().st_mtime_ns == stamp
    assert [p.name for p in build_root.iterdir()] == [
        protogen.build_dir(build_root=build_root).name
    ]


def test_a_build_that_loses_the_race_keeps_the_winners_tree(build_root: Path) -> None:
    tree = protogen.build_dir(build_root=build_root)
    package = protogen.containerd_api(build_root=build_root)
    stamp = Path(package.__file__).stat().st_mtime_ns

    protogen._build(protogen._source(None), tree)  # another process finished first

    assert Path(package.__file__).stat().st_mtime_ns == stamp
    assert [p.name for p in build_root.iterdir()] == [tree.name]  # its staging tree is gone


def test_the_environment_chooses_the_build_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOTILLA_PROTO_BUILD", str(tmp_path))
    assert protogen.build_dir().parent == tmp_path


def test_a_source_without_protos_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(errdefs.NotFound, match="no api/ directory"):
        protogen.containerd_api(source=tmp_path, build_root=tmp_path / "build")
