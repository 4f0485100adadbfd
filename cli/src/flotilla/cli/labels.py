"""``key=value`` label arguments, as ``ctr ... label`` takes them (``key=`` removes one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flotilla.common import errdefs

__all__ = ["label_pairs", "relabelled"]


def label_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``key=value`` arguments as a mapping (an empty value: remove the key).

    Raises:
        InvalidArgument: an argument without ``=`` or without a key.
    """
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise errdefs.InvalidArgument(f"label {pair!r}: expected key=value (key= removes)")
        found[key] = value
    return found


def relabelled(labels: Mapping[str, str], updates: Mapping[str, str]) -> dict[str, str]:
    """``labels`` with ``updates`` applied (an empty value removes its key)."""
    return {k: v for k, v in {**labels, **updates}.items() if v}
