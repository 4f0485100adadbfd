"""What a push sends: an image walked from the node's content store, children before parents.

containerd's ``remotes.PushContent``: from the root down (``images.ChildrenHandler`` filtered
by platform), the configs and layers are collected to be uploaded first, then the manifests,
then the indexes in the reverse of the order they were seen, so that a registry never gets a
document naming something it lacks. Non-distributable (foreign) layers are left out, as
``ctr images push`` does unless told otherwise.

Each blob carries the repository it may be mounted from: containerd's
``selectRepositoryMountCandidate`` reads the ``containerd.io/distribution.source.<registry>``
labels a pull sets (the blob's own, else its manifest's or index's), for the target's
registry, naming another repository than the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from flotilla.common import errdefs
from flotilla.content.helpers import read_blob
from flotilla.content.store import Store
from flotilla.images import oci
from flotilla.images.labels import SOURCE
from flotilla.images.platforms import Matcher
from flotilla.images.pull.plan import select_manifests

__all__ = ["Blob", "Document", "PushPlan", "plan_push"]

_FOREIGN: Final = (
    "application/vnd.oci.image.layer.nondistributable.",
    "application/vnd.docker.image.rootfs.foreign.",
)


@dataclass(frozen=True)
class Blob:
    """A config or layer to upload.

    Attributes:
        desc: the blob.
        mount_from: another repository of the target's registry that may have it ("": none).
        stored: whether the namespace's content store has it (a blob the registry already
            has need not be there).
    """

    desc: oci.Descriptor
    mount_from: str = ""
    stored: bool = True


@dataclass(frozen=True)
class Document:
    """A manifest or index and its bytes."""

    desc: oci.Descriptor
    data: bytes


@dataclass
class PushPlan:
    """Everything a push sends, in the order it is sent.

    Attributes:
        root: what the tag names (a manifest chosen from an index for a single platform).
        blobs: configs and layers by digest, each once.
        manifests: image manifests by digest, each once.
        indexes: indexes, children before parents; the last one is the root if it is one.
    """

    root: oci.Descriptor
    blobs: dict[str, Blob] = field(default_factory=dict)
    manifests: dict[str, Document] = field(default_factory=dict)
    indexes: list[Document] = field(default_factory=list)


@dataclass(frozen=True)
class _Walk:
    store: Store
    namespace: str
    image: str
    domain: str
    path: str
    matchers: Sequence[Matcher] | None
    plan: PushPlan


async def plan_push(
    store: Store,
    namespace: str,
    target: oci.Descriptor,
    matchers: Sequence[Matcher] | None,
    *,
    domain: str,
    path: str,
    image: str = "",
) -> PushPlan:
    """Walk ``target`` in ``namespace`` for a push to repository ``domain/path``.

    Args:
        store: the node's content store.
        namespace: where the image's blobs are.
        target: the image's root descriptor.
        matchers: the platforms to push, or ``None`` for every manifest of an index; with
            one platform, an index's manifest for it is pushed alone (``ctr push --platform``).
        domain: the target registry (picks the mount sources).
        path: the target repository (never a mount source).
        image: the image's name, for messages (default: the target's digest).

    Raises:
        NotFound: a manifest or index is not in the content store, or an index has no
            manifest for a wanted platform.
        InvalidArgument: a malformed or oversized manifest or index, or a root that is neither.
    """
    walk = _Walk(store, namespace, image or target.digest, domain, path, matchers, PushPlan(target))
    if oci.is_index(target.media_type) and matchers is not None and len(matchers) == 1:
        index = oci.decode_index(await _read(walk, target), target)
        walk.plan.root = select_manifests(index, target, matchers)[0]
    await _visit(walk, walk.plan.root, {})
    walk.plan.indexes.reverse()
    return walk.plan


async def _visit(walk: _Walk, desc: oci.Descriptor, inherited: Mapping[str, str]) -> None:
    if oci.is_index(desc.media_type):
        await _index(walk, desc, inherited)
    elif oci.is_manifest(desc.media_type):
        await _manifest(walk, desc, inherited)
    else:
        raise errdefs.InvalidArgument(
            f"image {walk.image}: {desc.digest} has media type {desc.media_type!r}, "
            "neither an index nor a manifest"
        )


async def _index(walk: _Walk, desc: oci.Descriptor, inherited: Mapping[str, str]) -> None:
    if any(doc.desc.digest == desc.digest for doc in walk.plan.indexes):
        return
    data = await _read(walk, desc)
    index = oci.decode_index(data, desc)
    walk.plan.indexes.append(Document(desc, data))
    sources = {**inherited, **await _sources(walk, desc.digest)}
    for child in select_manifests(index, desc, walk.matchers):
        await _visit(walk, child, sources)


async def _manifest(walk: _Walk, desc: oci.Descriptor, inherited: Mapping[str, str]) -> None:
    if desc.digest in walk.plan.manifests:
        return
    data = await _read(walk, desc)
    manifest = oci.decode_manifest(data, desc)
    sources = {**inherited, **await _sources(walk, desc.digest)}
    for blob in (manifest.config, *manifest.layers):
        if blob.digest in walk.plan.blobs or blob.media_type.startswith(_FOREIGN):
            continue
        walk.plan.blobs[blob.digest] = await _blob(walk, blob, sources)
    walk.plan.manifests[desc.digest] = Document(desc, data)


async def _blob(walk: _Walk, desc: oci.Descriptor, inherited: Mapping[str, str]) -> Blob:
    try:
        info = await walk.store.info(walk.namespace, desc.digest)
    except errdefs.NotFound:
        return Blob(desc, _mount_source(walk, inherited), stored=False)
    own = {k: v for k, v in info.labels.items() if k.startswith(SOURCE)}
    return Blob(desc, _mount_source(walk, {**inherited, **own}))


def _mount_source(walk: _Walk, sources: Mapping[str, str]) -> str:
    """The first repository the label for the target's registry names, other than the target."""
    for repository in sources.get(SOURCE + walk.domain, "").split(","):
        if repository and repository != walk.path:
            return repository
    return ""


async def _sources(walk: _Walk, digest: str) -> dict[str, str]:
    """A document's distribution-source labels (it was just read, so it is there)."""
    try:
        info = await walk.store.info(walk.namespace, digest)
    except errdefs.NotFound:  # deleted since it was read: nothing to inherit
        return {}
    return {k: v for k, v in info.labels.items() if k.startswith(SOURCE)}


async def _read(walk: _Walk, desc: oci.Descriptor) -> bytes:
    noun = "index" if oci.is_index(desc.media_type) else "manifest"
    if desc.size > oci.MAX_DOCUMENT:
        raise errdefs.InvalidArgument(
            f"image {walk.image}: {noun} {desc.digest}: {desc.size} bytes, "
            f"more than {oci.MAX_DOCUMENT}"
        )
    try:
        data = await read_blob(walk.store, walk.namespace, desc.digest)
    except errdefs.NotFound:
        platform = f" ({desc.platform.spec()})" if desc.platform is not None else ""
        raise errdefs.NotFound(
            f"image {walk.image}: {noun} {desc.digest}{platform} is not in the content store "
            f"of namespace {walk.namespace}"
        ) from None
    if len(data) != desc.size:
        raise errdefs.DataLoss(
            f"image {walk.image}: {noun} {desc.digest}: {len(data)} bytes in the content "
            f"store, descriptor says {desc.size}"
        )
    return data
