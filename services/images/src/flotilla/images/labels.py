"""containerd's labels that tie an image's blobs and snapshots together.

Its collector and ours read them alike: an index names its manifests
(``gc.ref.content.m.<i>``), a manifest its config and layers (``gc.ref.content.config``,
``gc.ref.content.l.<i>``), a layer its uncompressed digest (``containerd.io/uncompressed``), a
config its unpacked snapshot (``containerd.io/gc.ref.snapshot.<snapshotter>``), and a pulled
blob where it came from (``containerd.io/distribution.source.<registry>``, which a push reads
to mount it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from flotilla.images import oci
from flotilla.images.gc.refs import CONTENT_REF, SNAPSHOT_REF
from flotilla.snapshots.diff.differ import UNCOMPRESSED_LABEL

__all__ = [
    "SOURCE",
    "UNCOMPRESSED",
    "config_labels",
    "index_labels",
    "manifest_labels",
    "source_labels",
]

UNCOMPRESSED: Final = UNCOMPRESSED_LABEL
SOURCE: Final = "containerd.io/distribution.source."


def index_labels(children: Sequence[oci.Descriptor]) -> dict[str, str]:
    """An index's labels: the manifests that came with it."""
    return {f"{CONTENT_REF}.m.{i}": child.digest for i, child in enumerate(children)}


def manifest_labels(config: oci.Descriptor, layers: Sequence[oci.Descriptor]) -> dict[str, str]:
    """A manifest's labels: its config and layers."""
    found = {f"{CONTENT_REF}.config": config.digest}
    found.update({f"{CONTENT_REF}.l.{i}": layer.digest for i, layer in enumerate(layers)})
    return found


def config_labels(snapshotter: str, chain_id: str) -> dict[str, str]:
    """A config's label once its layers are unpacked into ``snapshotter``."""
    return {f"{SNAPSHOT_REF}{snapshotter}": chain_id}


def source_labels(registry: str, repository: str) -> dict[str, str]:
    """The label saying which registry and repository a blob came from."""
    return {f"{SOURCE}{registry}": repository}
