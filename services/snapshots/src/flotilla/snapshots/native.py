"""The ``native`` layout: each snapshot's ``fs`` is a full copy of its parent's, plus changes.

Works on any file system: a snapshot on a parent starts as ``cp -a`` of the parent's tree
(reflinks where the file system has them), and every snapshot mounts as a bind of its own
``fs`` (read-only for a view). Copies depend on nothing once made, but a layer applied without
its parent would lack the parent's files, so it cannot rebase.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from flotilla.common import errdefs
from flotilla.common.mounts import Mount
from flotilla.snapshots.layout import tree
from flotilla.snapshots.snapshotter import Kind

__all__ = ["NativeLayout"]

NAME: Final = "native"


class NativeLayout:
    """The native snapshotter's layout (see the module docstring)."""

    name = NAME
    can_rebase = False

    def populate(self, new_dir: Path, parents: Sequence[Path]) -> None:
        """An empty tree, or a copy of the nearest parent's."""
        target = tree(new_dir)
        if not parents:
            target.mkdir(mode=0o755)
            return
        copied = subprocess.run(
            ["cp", "-a", "--reflink=auto", str(tree(parents[0])), str(target)],
            capture_output=True,
            check=False,
        )
        if copied.returncode != 0:
            message = copied.stderr.decode(errors="replace").strip()
            if "No space left" in message:
                raise errdefs.ResourceExhausted(f"no space left on device ({new_dir})")
            raise errdefs.Internal(f"copy of the parent snapshot failed: {message}")

    def mounts(self, kind: Kind, own: Path, parents: Sequence[Path]) -> list[Mount]:
        """A bind of the snapshot's own tree."""
        mode = "ro" if kind is Kind.VIEW else "rw"
        return [Mount(type="bind", source=str(tree(own)), options=(mode, "rbind"))]
