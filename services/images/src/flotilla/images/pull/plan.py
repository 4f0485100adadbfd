"""What a pull takes from an index (containerd's ``FilterPlatforms`` + ``LimitManifests``).

For each wanted platform the best-ranked manifest of an index (``platforms.only`` ranks what a
node can run), or every manifest with ``all_platforms``.
"""

from __future__ import annotations

from collections.abc import Sequence

from flotilla.common import errdefs
from flotilla.images import oci
from flotilla.images.platforms import Matcher

__all__ = ["select_manifests"]


def select_manifests(
    index: oci.Index, desc: oci.Descriptor, matchers: Sequence[Matcher] | None
) -> list[oci.Descriptor]:
    """The manifests (or nested indexes) of ``index`` to pull; every one when ``matchers`` is None.

    Raises:
        NotFound: no manifest matches a wanted platform.
    """
    children = index.images()
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
