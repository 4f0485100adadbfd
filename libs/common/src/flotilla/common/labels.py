"""containerd's label rules: validation, and Update along label field paths.

Every record with labels (blobs, snapshots, images, containers, leases, namespaces) follows
them. A record with more updatable fields than its labels handles those paths itself and
hands each label path to :func:`apply_path`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from flotilla.common.errdefs import InvalidArgument

__all__ = ["MAX_LABEL_SIZE", "apply_path", "is_label_path", "updated", "validate"]

MAX_LABEL_SIZE: Final = 4096
"""containerd's limit on the combined UTF-8 size of a label's key and value."""

_PREFIX: Final = "labels."


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


def is_label_path(path: str) -> bool:
    """Whether ``path`` is ``labels`` or ``labels.<key>``."""
    return path == "labels" or (path.startswith(_PREFIX) and len(path) > len(_PREFIX))


def apply_path(result: dict[str, str], requested: Mapping[str, str], path: str) -> dict[str, str]:
    """One label field path applied to ``result`` (a label path: see :func:`is_label_path`).

    ``labels`` replaces every label with ``requested``; ``labels.<key>`` sets that key from
    ``requested``, or removes it when ``requested`` lacks it. Not yet validated.
    """
    if path == "labels":
        return dict(requested)
    key = path[len(_PREFIX) :]
    result[key] = requested.get(key, "")
    return result


def updated(
    current: Mapping[str, str],
    requested: Mapping[str, str],
    fieldpaths: Sequence[str],
    record: str = "content info",
) -> dict[str, str]:
    """The labels after an Update of ``current`` with ``requested`` along ``fieldpaths``.

    No field paths at all means ``labels``: every label is replaced.

    Args:
        current: the stored labels.
        requested: the labels the Update carries.
        fieldpaths: which labels to change.
        record: what is updated, for the error message (``content info``, ``image``).

    Raises:
        InvalidArgument: on a field path other than those, or an invalid label.
    """
    if not fieldpaths:
        return validate(requested)
    result = dict(current)
    for path in fieldpaths:
        if not is_label_path(path):
            raise InvalidArgument(f"cannot update {path!r} field on {record}")
        result = apply_path(result, requested, path)
    return validate(result)
