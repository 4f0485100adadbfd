"""What a pull takes from an index, and the labels that tie an image's blobs together.

containerd's ``images.FilterPlatforms`` + ``LimitManifests``: for each wanted platform the
best-ranked manifest of an index (``platforms.only`` ranks what a node can run), or every
manifest with ``all_platforms``. The labels are containerd's, so its collector and ours read
them alike: an index names the manifests it was pulled with (``gc.ref.content.m.<i>``), a
manifest its config and layers (``gc.ref.content.config``, ``gc.ref.content.l.<i>``), a layer
its uncompressed digest (``containerd.io/uncompressed``), a config its unpacked snapshot
(``containerd.io/gc.ref.snapshot.<snapshotter>``), and every blob where it came from
(``containerd.io/distribution.source.<registry>``, which a push reads to mount it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from flotilla.common import errdefs
from flotilla.images import oci
from flotilla.images.platforms import Matcher

__all__ = [
    "UNCOMPRESSED",
    "config_labels",
    "index_labels",
    "manifest_labels",
    "select_manifests",
    "source_labels",
]

UNCOMPRESSED: Final = "containerd.io/uncompressed"
_CONTENT: Final = "containerd.io/gc.ref.content"
_SNAPSHOT: Final = "containerd.io/gc.ref.snapshot."
_SOURCE: Final = "containerd.io/distribution.source."


def select_manifests(
    index: oci.Index, desc: oci.Descriptor, matchers: Sequence[Matcher] | None
) -> list[oci.Descriptor]:
    """The manifests (or nested indexes) of ``index`` to pull; every one when ``matchers`` is None.

    Raises:
        NotFound: no manifest matches a wanted platform.
    """
    children = [
        child
        for child in index.manifests
        if oci.is_manifest(child.media_type) or oci.is_index(child.media_type)
    ]
    if matchers is None:
        return children
    chosen: list[oci.Descriptor] = []
    for matcher in matchers:
        best = _best(children, matcher)
        if best is None:
            wanted = ", ".join(str(p) for p in matcher.platforms[:1])
            raise errdefs.NotFound(f"index {desc.digest}: no manifest for platform {wanted}")
        if best not in chosen:
            chosen.append(best)
    return chosen


def _best(children: Sequence[oci.Descriptor], matcher: Matcher) -> oci.Descriptor | None:
    ranked: list[tuple[int, int, oci.Descriptor]] = []
    for position, child in enumerate(children):
        if child.platform is None:
            continue
        rank = matcher.rank(child.platform.spec())
        if rank is not None:
            ranked.append((rank, position, child))
    return min(ranked, key=lambda item: item[:2])[2] if ranked else None


def index_labels(children: Sequence[oci.Descriptor]) -> dict[str, str]:
    """An index's labels: the manifests pulled with it."""
    return {f"{_CONTENT}.m.{i}": child.digest for i, child in enumerate(children)}


def manifest_labels(manifest: oci.Manifest) -> dict[str, str]:
    """A manifest's labels: its config and layers."""
    labels = {f"{_CONTENT}.config": manifest.config.digest}
    labels.update({f"{_CONTENT}.l.{i}": layer.digest for i, layer in enumerate(manifest.layers)})
    return labels


def config_labels(snapshotter: str, chain_id: str) -> dict[str, str]:
    """A config's label once its layers are unpacked into ``snapshotter``."""
    return {f"{_SNAPSHOT}{snapshotter}": chain_id}


def source_labels(registry: str, repository: str) -> dict[str, str]:
    """The label saying which registry and repository a blob came from."""
    return {f"{_SOURCE}{registry}": repository}
