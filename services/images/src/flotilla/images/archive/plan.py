"""What an import writes: the blobs, in archive order, with the labels that tie them together.

The labels are those containerd's pull sets, so either collector keeps an imported image whole
from its root: an index names its manifests (``gc.ref.content.m.<i>``), a manifest its config
and layers (``gc.ref.content.config``, ``gc.ref.content.l.<i>``).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field

from flotilla.images import oci

__all__ = ["Blob", "Plan"]


@dataclass
class Blob:
    """One blob to write.

    Attributes:
        entry: the archive's regular file holding it.
        member: its tar header.
        desc: its descriptor; for a ``docker save`` layer, filled in once written.
        labels: its gc labels.
        data: its bytes, when the archive's scan kept them.
    """

    entry: str
    member: tarfile.TarInfo
    desc: oci.Descriptor | None
    labels: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None


@dataclass
class Plan:
    """The blobs to write (each once, by entry) and the images they make."""

    blobs: dict[str, Blob] = field(default_factory=dict)
    images: list[tuple[str, oci.Descriptor]] = field(default_factory=list)

    def add(self, blob: Blob) -> Blob:
        """``blob``, or the one already planned from the same entry."""
        return self.blobs.setdefault(blob.entry, blob)

    def in_archive_order(self) -> list[Blob]:
        """The blobs by their place in the archive, so a compressed one is read through once."""
        return sorted(self.blobs.values(), key=lambda blob: blob.member.offset_data)
