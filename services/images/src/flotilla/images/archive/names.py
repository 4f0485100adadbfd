"""Image names in archives, as containerd's ``images/archive`` and ``ctr images import`` read them.

An OCI index entry is named by ``io.containerd.image.name`` (a full name), else by
``org.opencontainers.image.ref.name``: a full reference as it is, or a bare tag joined to a
base name (``ctr images import --base-name``) as ``<base>:<tag>``. A ``docker save``
RepoTag is normalized (``busybox:latest`` is ``docker.io/library/busybox:latest``). On export
an entry carries both annotations, the second being the name's tag, and ``manifest.json``
the familiar tagged names Docker prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flotilla.common.errdefs import InvalidArgument
from flotilla.images import reference

__all__ = [
    "IMAGE_NAME",
    "REF_NAME",
    "entry_name",
    "familiar_tag",
    "name_annotations",
    "normalize_repo_tag",
]

IMAGE_NAME: Final = "io.containerd.image.name"
REF_NAME: Final = "org.opencontainers.image.ref.name"


def entry_name(annotations: Mapping[str, str], base_name: str = "") -> str | None:
    """The image name of an ``index.json`` entry, or None when it has none.

    Raises:
        InvalidArgument: if the name is not a valid reference.
    """
    name = annotations.get(IMAGE_NAME, "")
    if not name:
        ref = annotations.get(REF_NAME, "")
        if any(mark in ref for mark in "/:@"):
            name = ref
        elif ref and base_name:
            name = f"{base_name}:{ref}"
    if not name:
        return None
    try:
        reference.parse(name, default_tag=False)
    except InvalidArgument as err:
        raise InvalidArgument(f"index.json: image name {name!r}: {err}") from None
    return name


def normalize_repo_tag(tag: str) -> str:
    """A ``docker save`` RepoTag as a full name (``docker.io/library/busybox:latest``).

    Raises:
        InvalidArgument: if it is not a valid reference.
    """
    try:
        return str(reference.parse(tag))
    except InvalidArgument as err:
        raise InvalidArgument(f"manifest.json: RepoTag {tag!r}: {err}") from None


def name_annotations(name: str) -> dict[str, str]:
    """The annotations an exported ``index.json`` entry carries for ``name``."""
    annotations = {IMAGE_NAME: name}
    try:
        parsed = reference.parse(name, default_tag=False)
    except InvalidArgument:
        annotations[REF_NAME] = name
        return annotations
    # containerd's ociReferenceName: the tag, which is what OCI tools read.
    annotations[REF_NAME] = parsed.tag or parsed.digest
    return annotations


def familiar_tag(name: str) -> str | None:
    """``name`` as a ``manifest.json`` RepoTag (``busybox:latest``), None for a digest-only name."""
    try:
        parsed = reference.parse(name, default_tag=False)
    except InvalidArgument:
        return None
    if not parsed.tag:
        return None
    return reference.Reference(parsed.domain, parsed.path, parsed.tag).familiar
