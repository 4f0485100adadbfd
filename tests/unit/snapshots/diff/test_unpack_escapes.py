"""No layer entry touches anything outside the root: each attempt is refused, named, undone.

Every attack runs against an empty root and against one holding an earlier layer's files;
after the refusal the root is as it was and the sentinel beside it is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from unpack_tars import Member, directory, file, hardlink, symlink, tar_bytes, tree, unpack_bytes

from flotilla.common import errdefs
from flotilla.snapshots.diff.unpack import Whiteouts

pytestmark = pytest.mark.root


@dataclass
class Scene:
    root: Path
    outside: Path

    def check_untouched(self) -> None:
        assert sorted(p.name for p in self.outside.iterdir()) == ["sentinel"]
        assert (self.outside / "sentinel").read_bytes() == b"keep"
        assert not (self.outside / "sentinel").is_symlink()


@pytest.fixture(params=["empty", "populated"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Scene:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"keep")
    root = tmp_path / "root"
    root.mkdir()
    if request.param == "populated":
        (root / "usr/bin").mkdir(parents=True)
        (root / "usr/bin/sh").write_bytes(b"sh")
        (root / "up").symlink_to("../outside")  # an earlier layer's (hostile) symlink
        (root / "abs").symlink_to(outside)
    return Scene(root, outside)


def refused(scene: Scene, entry: str, match: str, *members: Member, **options: object) -> None:
    """Unpacking ``members`` fails naming ``entry``; nothing changed inside or outside."""
    before = tree(scene.root)
    with pytest.raises(errdefs.InvalidArgument) as caught:
        unpack_bytes(tar_bytes(file("first", b"unpacked before"), *members), scene.root, **options)
    assert f"{entry!r}" in str(caught.value)
    assert match in str(caught.value)
    assert tree(scene.root) == before
    scene.check_untouched()


@pytest.mark.parametrize("whiteouts", list(Whiteouts))
def test_dot_dot_components(scene: Scene, whiteouts: Whiteouts) -> None:
    for name in ("../outside/evil", "a/../../outside/evil", "a/.."):
        refused(scene, name, "'..' in path", file(name, b"x"), whiteouts=whiteouts)
    refused(scene, "../outside/.wh.sentinel", "'..'", file("../outside/.wh.sentinel"))


def test_absolute_paths(scene: Scene) -> None:
    evil = str(scene.outside / "evil")
    refused(scene, evil, "absolute path", file(evil, b"x"))
    refused(scene, "/etc/passwd/", "absolute path", directory("/etc/passwd"))


def test_relative_symlink_out_of_the_root(scene: Scene) -> None:
    refused(
        scene,
        "link/evil",
        "leads outside the root",
        symlink("link", "../outside"),
        file("link/evil", b"x"),
    )


def test_deep_relative_symlink_out_of_the_root(scene: Scene) -> None:
    refused(
        scene,
        "a/b/l/evil",
        "leads outside the root",
        directory("a/b"),
        symlink("a/b/l", "../../../outside"),
        file("a/b/l/evil", b"x"),
    )


def test_symlink_chain_out_of_the_root(scene: Scene) -> None:
    refused(
        scene,
        "one/evil",
        "leads outside the root",
        symlink("one", "two/x/.."),
        symlink("two", "three"),
        directory("three/x"),
        symlink("three/up", ".."),
        symlink("one", "three/up/.."),
        file("one/evil", b"x"),
    )


def test_symlink_loops(scene: Scene) -> None:
    refused(
        scene,
        "a/x",
        "too many symlinks",
        symlink("a", "b"),
        symlink("b", "a"),
        file("a/x", b"x"),
    )


@pytest.mark.parametrize("whiteouts", list(Whiteouts))
def test_whiteouts_and_opaque_markers_through_a_symlink(scene: Scene, whiteouts: Whiteouts) -> None:
    link = symlink("link", "../outside")
    for marker in ("link/.wh.sentinel", "link/.wh..wh..opq"):
        refused(scene, marker, "outside the root", link, file(marker), whiteouts=whiteouts)


def test_whiteouts_of_dot_and_dot_dot(scene: Scene) -> None:
    for marker in ("a/.wh..", "a/.wh..."):
        refused(scene, marker, "whiteout of", directory("a"), file(marker))


def test_hard_links_outside_or_missing(scene: Scene) -> None:
    sentinel = str(scene.outside / "sentinel")
    refused(scene, "h", "'..' in path", hardlink("h", "../outside/sentinel"))
    refused(scene, "h", "absolute path", hardlink("h", sentinel))
    refused(scene, "h", "outside the root", symlink("l", "../outside"), hardlink("h", "l/sentinel"))
    refused(scene, "h", "is missing", hardlink("h", "nothere"))
    refused(scene, "h", "is missing", hardlink("h", "nodir/nothere"))
    refused(scene, "h", "is missing", hardlink("h", "h"))
    refused(scene, "h", "hard link to a directory", directory("d"), hardlink("h", "d"))


def test_a_directory_replaced_by_a_symlink_mid_layer(scene: Scene) -> None:
    refused(
        scene,
        "d/evil",
        "leads outside the root",
        directory("d"),
        file("d/f", b"in d"),
        symlink("d", "../outside"),
        file("d/evil", b"x"),
    )


def test_an_earlier_layers_symlink_is_no_way_out(scene: Scene) -> None:
    if not (scene.root / "up").is_symlink():
        (scene.root / "up").symlink_to("../outside")
    refused(scene, "up/evil", "leads outside the root", file("up/evil", b"x"))
    refused(scene, "up/sentinel", "leads outside", file("up/sentinel", b"x"))


def test_an_absolute_symlink_is_resolved_inside_the_root(scene: Scene) -> None:
    """As in the container (and in containerd): ``/x`` means the root's ``x``."""
    unpack_bytes(tar_bytes(symlink("abs", str(scene.outside)), file("abs/evil", b"x")), scene.root)
    inside = scene.root / str(scene.outside).lstrip("/") / "evil"
    assert inside.read_bytes() == b"x"
    scene.check_untouched()


def test_a_symlink_that_stays_inside_is_followed(scene: Scene) -> None:
    data = tar_bytes(
        directory("usr/lib"),
        symlink("lib", "usr/lib"),
        symlink("usr/lib/self", "../lib/."),
        file("lib/self/libc.so", b"libc"),
    )
    unpack_bytes(data, scene.root)
    assert (scene.root / "usr/lib/libc.so").read_bytes() == b"libc"
    assert (scene.root / "lib").is_symlink()


@pytest.mark.parametrize("kind", ["file", "directory", "hardlink", "symlink"])
@pytest.mark.parametrize("points_to", ["sentinel", "outside"])
def test_the_last_component_is_replaced_never_followed(
    scene: Scene, kind: str, points_to: str
) -> None:
    victim = scene.root / "victim"
    victim.symlink_to(scene.outside / "sentinel" if points_to == "sentinel" else scene.outside)
    entry = {
        "file": file("victim", b"x"),
        "directory": directory("victim"),
        "hardlink": hardlink("victim", "first"),
        "symlink": symlink("victim", "elsewhere"),
    }[kind]
    unpack_bytes(tar_bytes(file("first", b"1"), entry), scene.root)
    assert victim.is_symlink() == (kind == "symlink")
    scene.check_untouched()


def test_a_file_in_the_way_of_a_parent(scene: Scene) -> None:
    refused(scene, "f/x", "'f' is not a directory", file("f", b"f"), file("f/x", b"x"))
