"""The ``overlayfs`` layout: each snapshot's ``fs`` holds only its own layer.

An active snapshot on parents is an overlay mount (its ``fs`` the upper directory, its
``work`` the work directory, the parents' ``fs`` the lower ones, nearest first); without
parents it is a bind mount of its ``fs``. A view of one parent is a read-only bind of the
parent's ``fs``; of more, a read-only overlay of lower directories only. Layers never
depend on each other's directories, so a layer can be applied before it knows its parent
(``can_rebase``).

Overlay's lower directories must not sit on an overlay themselves: :func:`probe` tries a
real mount under the root before the snapshotter is offered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from flotilla.common import errdefs
from flotilla.common.mounts import Mount, mount_all, unmount
from flotilla.snapshots.layout import tree
from flotilla.snapshots.snapshotter import Kind

__all__ = ["OverlayLayout", "probe"]

NAME: Final = "overlayfs"


class OverlayLayout:
    """The overlayfs snapshotter's layout (see the module docstring)."""

    name = NAME
    can_rebase = True

    def populate(self, new_dir: Path, parents: Sequence[Path]) -> None:
        """An empty upper tree and an overlay work directory."""
        tree(new_dir).mkdir(mode=0o755)
        (new_dir / "work").mkdir(mode=0o711)

    def mounts(self, kind: Kind, own: Path, parents: Sequence[Path]) -> list[Mount]:
        """A bind or an overlay: see the module docstring."""
        lowers = [str(tree(parent)) for parent in parents]
        if kind is Kind.VIEW:
            if len(lowers) == 0:
                return [_bind(tree(own), "ro")]
            if len(lowers) == 1:
                return [_bind(Path(lowers[0]), "ro")]
            return [
                Mount(type="overlay", source="overlay", options=(f"lowerdir={':'.join(lowers)}",))
            ]
        if not lowers:
            return [_bind(tree(own), "rw")]
        options = (
            "index=off",
            f"workdir={own / 'work'}",
            f"upperdir={tree(own)}",
            f"lowerdir={':'.join(lowers)}",
        )
        return [Mount(type="overlay", source="overlay", options=options)]


def _bind(directory: Path, mode: str) -> Mount:
    return Mount(type="bind", source=str(directory), options=(mode, "rbind"))


def probe(root: Path) -> None:
    """Mount a two-layer overlay under ``root`` and unmount it.

    Raises:
        Unavailable: overlayfs does not work there (e.g. ``root`` is on an overlay itself).
    """
    base = root / "probe"
    dirs = [base / name for name in ("lower1", "lower2", "upper", "work", "merged")]
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    options = (f"lowerdir={dirs[0]}:{dirs[1]}", f"upperdir={dirs[2]}", f"workdir={dirs[3]}")
    try:
        mount_all([Mount(type="overlay", source="overlay", options=options)], dirs[4])
    except errdefs.ErrdefsError as error:
        raise errdefs.Unavailable(f"overlayfs does not work under {root}: {error}") from error
    finally:
        unmount(dirs[4])
        for directory in reversed(dirs):
            _remove_tree(directory)
        base.rmdir()


def _remove_tree(directory: Path) -> None:
    for top, dirs, files in os.walk(directory, topdown=False):
        for name in files:
            os.unlink(os.path.join(top, name))
        for name in dirs:
            os.rmdir(os.path.join(top, name))
    directory.rmdir()
