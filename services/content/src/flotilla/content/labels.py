"""Label rules shared by content store implementations: validation and field-path updates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from flotilla.common.errdefs import InvalidArgument

__all__ = ["MAX_LABEL_SIZE", "updated", "validate"]

MAX_LABEL_SIZE: Final = 4096
"""containerd's limit on the combined UTF-8 size of a label's key and value."""


def validate(labels: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``labels`` without empty values (containerd stores none).

    Raises:
        InvalidArgument: if a key is empty or a key and value exceed :data:`MAX_LABEL_SIZE`.
    """
    kept: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if not key:
            raise InvalidArgument("label key must not be empty")
        size = len(key.encode()) + len(value.encode())
        if size > MAX_LABEL_SIZE:
            raise InvalidArgument(
                f"label key and value length ({size} bytes) greater than maximum size "
                f"({MAX_LABEL_SIZE} bytes), key: {key[:64]}"
            )
        if value:
            kept[key] = value
    return kept


def updated(
    current: Mapping[str, str], requested: Mapping[str, str], fieldpaths: Sequence[str]
) -> dict[str, str]:
    """The labels after an Update of ``current`` with ``requested`` along ``fieldpaths``.

    ``labels`` (or no field paths at all) replaces every label; ``labels.<key>`` sets that
    key from ``requested``, or removes it when ``requested`` lacks it.

    Raises:
        InvalidArgument: on a field path other than those, or an invalid label.
    """
    if not fieldpaths:
        return validate(requested)
    result = dict(current)
    for path in fieldpaths:
        if path == "labels":
            result = dict(requested)
        elif path.startswith("labels.") and len(path) > len("labels."):
            key = path[len("labels.") :]
            result[key] = requested.get(key, "")
        else:
            raise InvalidArgument(f"cannot update {path!r} field on content info")
    return validate(result)
