"""Whiteouts, the OCI way of deleting in a layer: ``.wh.<name>`` and ``.wh..wh..opq``.

Two modes, as containerd has them:

- ``overlay``, unpacking into an overlay's upper directory: the markers become what overlayfs
  reads, a 0/0 character device ``<name>`` and the ``trusted.overlay.opaque=y`` attribute
  on the directory. Lower directories are never looked at.
- ``delete``, unpacking into a whole tree: ``<name>`` is removed; an opaque directory loses
  every entry that was there before this layer, and keeps what this layer unpacked into it,
  before or after the marker in the archive.

Other ``.wh..wh.*`` names (AUFS metadata) are skipped.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Final

from flotilla.common import errdefs
from flotilla.snapshots.diff.unpack_paths import Dir
from flotilla.snapshots.diff.unpack_remove import remove_children
from flotilla.snapshots.diff.unpack_tar_fields import Member
from flotilla.snapshots.diff.unpack_write import Writer

__all__ = ["OPAQUE", "PREFIX", "clear_opaque", "delete", "is_whiteout", "overlay", "skipped"]

PREFIX: Final = ".wh."
OPAQUE: Final = ".wh..wh..opq"
_META: Final = ".wh..wh."
_OPAQUE_XATTR: Final = "trusted.overlay.opaque"


def skipped(parts: Sequence[str]) -> bool:
    """Whether the path is AUFS metadata (a ``.wh..wh.`` component other than the marker)."""
    if _META not in "/".join(parts):  # the usual case, at C speed
        return False
    for index, part in enumerate(parts):
        if part.startswith(_META) and not (part == OPAQUE and index == len(parts) - 1):
            return True
    return False


def is_whiteout(name: str) -> bool:
    """Whether an entry's last component is a whiteout marker."""
    return name.startswith(PREFIX)


def overlay(writer: Writer, member: Member, parent: Dir, name: str) -> None:
    """The overlayfs form of the marker ``name`` in ``parent``."""
    if name == OPAQUE:
        try:
            os.getxattr(parent.fd, _OPAQUE_XATTR)
        except OSError as err:
            if err.errno != errno.ENODATA:
                raise
            writer.track.opaqued.append(parent.path)
        os.setxattr(parent.fd, _OPAQUE_XATTR, b"y")
    else:
        writer.whiteout_device(member, parent, _hidden(member, name))


def delete(writer: Writer, parent: Dir, name: str, member: Member) -> None:
    """Carry out the marker ``name`` in ``parent``: remove what it hides."""
    if name == OPAQUE:
        clear_opaque(writer, parent)
    else:
        writer.remove(parent, _hidden(member, name))


def clear_opaque(writer: Writer, directory: Dir) -> None:
    """Empty ``directory`` of all that this layer did not unpack, at any depth."""
    prefix = "/".join(directory.path)
    keep: set[str] = set()
    for path in writer.track.unpacked:
        if prefix and not path.startswith(prefix + "/"):
            continue
        while path and path not in keep:  # the path and its directories, up to a known one
            keep.add(path)
            path = path.rpartition("/")[0]
    writer.root.forget()
    remove_children(directory.fd, lambda path: "/".join((*directory.path, *path)) in keep)


def _hidden(member: Member, name: str) -> str:
    hidden = name[len(PREFIX) :]
    if hidden in ("", ".", ".."):  # ".wh.." would empty the directory, ".wh..." its parent
        raise errdefs.InvalidArgument(f"layer entry {member.name!r}: whiteout of {hidden!r}")
    return hidden
