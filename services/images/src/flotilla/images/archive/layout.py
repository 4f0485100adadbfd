"""Planning the import of an OCI image layout: ``oci-layout``, ``index.json``, ``blobs/...``.

Every ``index.json`` entry is walked before anything is written: an index's manifests, a
manifest's config and layers. Manifests, indexes and configs are decoded strictly from the
bytes the scan kept (their digests checked); layers are only looked up, their bytes checked by
the store when they are committed. A blob an entry or a manifest names must be in the archive
(NotFound saying which, and who names it). Of an index, the manifests matching ``platforms``
must be there; without ``platforms``, those that are there are imported (an export of some
platforms of an index leaves the others out), but at least one.
"""

from __future__ import annotations

from typing import Final

import msgspec

from flotilla.common import digests
from flotilla.common.errdefs import InvalidArgument, NotFound
from flotilla.images import oci
from flotilla.images.archive.entries import Catalog
from flotilla.images.archive.names import entry_name
from flotilla.images.archive.plan import Blob, Plan
from flotilla.images.labels import index_labels, manifest_labels
from flotilla.images.platforms import Matcher

__all__ = ["LAYOUT_VERSION", "blob_entry", "plan_layout", "read_document"]

LAYOUT_VERSION: Final = "1.0.0"


class _Layout(msgspec.Struct, frozen=True, rename="camel"):
    image_layout_version: str


def blob_entry(digest: str) -> str:
    """Where a layout keeps the blob ``digest``: ``blobs/<alg>/<hex>``."""
    parsed = digests.parse(digest)
    return f"blobs/{parsed.algorithm}/{parsed.encoded}"


def plan_layout(catalog: Catalog, *, base_name: str = "", platforms: Matcher | None = None) -> Plan:
    """What importing the layout in ``catalog`` writes, and the images it names.

    Raises:
        InvalidArgument: a bad ``oci-layout`` or ``index.json``, a document that is too
            large, malformed or not what its digest says, or one name for two images.
        NotFound: a blob named by the index or a manifest is not in the archive.
    """
    _check_version(catalog)
    index = _read_index(catalog)
    walker = _Walker(catalog, platforms)
    named: dict[str, oci.Descriptor] = {}
    for entry in index.manifests:
        if not (oci.is_index(entry.media_type) or oci.is_manifest(entry.media_type)):
            raise InvalidArgument(
                f"{catalog.path}: index.json: entry {entry.digest} has media type "
                f"{entry.media_type!r}, not an image index or manifest"
            )
        walker.walk(entry, "index.json", required=True)
        name = entry_name(entry.annotations, base_name)
        if name is None:
            continue
        if named.setdefault(name, entry).digest != entry.digest:
            raise InvalidArgument(f"{catalog.path}: index.json names two images {name!r}")
        walker.plan.images.append((name, entry))
    return walker.plan


def _check_version(catalog: Catalog) -> None:
    try:
        layout = msgspec.json.decode(catalog.docs["oci-layout"], type=_Layout)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise InvalidArgument(f"{catalog.path}: oci-layout: {err}") from None
    if layout.image_layout_version != LAYOUT_VERSION:
        raise InvalidArgument(
            f"{catalog.path}: oci-layout: unsupported version {layout.image_layout_version!r}"
        )


def _read_index(catalog: Catalog) -> oci.Index:
    data = catalog.docs.get("index.json")
    if data is None:
        raise InvalidArgument(f"{catalog.path}: an OCI layout without index.json")
    desc = oci.Descriptor(media_type=oci.OCI_INDEX, digest=digests.digest_of(data), size=len(data))
    try:
        return oci.decode_index(data, desc)
    except InvalidArgument as err:
        raise InvalidArgument(f"{catalog.path}: index.json: {err}") from None


def read_document(catalog: Catalog, entry: str, size: int, desc: oci.Descriptor) -> bytes:
    """The kept bytes of the document ``desc`` at ``entry``, their digest checked.

    Raises:
        InvalidArgument: too large, not JSON, or not what ``desc``'s digest says.
    """
    if size > oci.MAX_DOCUMENT:
        raise InvalidArgument(
            f"{catalog.path}: {desc.media_type} {desc.digest} ({entry}): {size} bytes, "
            f"more than {oci.MAX_DOCUMENT}"
        )
    data = catalog.docs.get(entry)
    if data is None:
        raise InvalidArgument(
            f"{catalog.path}: {desc.media_type} {desc.digest} ({entry}): not a JSON document"
        )
    actual = digests.digest_of(data, digests.parse(desc.digest).algorithm)
    if actual != desc.digest:
        raise InvalidArgument(
            f"{catalog.path}: blob {desc.digest} ({entry}): its bytes have digest {actual}"
        )
    return data


def _kind(desc: oci.Descriptor) -> str:
    return oci.ref_key(desc).partition("-")[0]


class _Walker:
    """Walks from the index entries down, planning every blob it meets once."""

    def __init__(self, catalog: Catalog, platforms: Matcher | None) -> None:
        self.catalog = catalog
        self.platforms = platforms
        self.plan = Plan()
        self._done: set[str] = set()

    def walk(self, desc: oci.Descriptor, parent: str, *, required: bool) -> bool:
        """Plan ``desc`` and what it names; False if it is absent and not ``required``."""
        if desc.digest in self._done:
            return True
        entry = blob_entry(desc.digest)
        found = self.catalog.find(entry)
        if found is None:
            if required:
                raise NotFound(
                    f"{self.catalog.path}: {_kind(desc)} {desc.digest} named by {parent} "
                    f"is not in the archive ({entry})"
                )
            return False
        entry, member = found
        if member.size != desc.size:
            raise InvalidArgument(
                f"{self.catalog.path}: blob {desc.digest} ({entry}): {member.size} bytes, "
                f"but {parent} says {desc.size}"
            )
        blob = Blob(entry, member, desc)
        if oci.is_index(desc.media_type) or oci.is_manifest(desc.media_type):
            blob.data = read_document(self.catalog, entry, member.size, desc)
            blob.labels = self._children(desc, blob.data)
        self.plan.add(blob)
        self._done.add(desc.digest)
        return True

    def _children(self, desc: oci.Descriptor, data: bytes) -> dict[str, str]:
        try:
            if oci.is_index(desc.media_type):
                return self._index(desc, oci.decode_index(data, desc))
            return self._manifest(desc, oci.decode_manifest(data, desc))
        except InvalidArgument as err:
            if str(err).startswith(str(self.catalog.path)):
                raise
            raise InvalidArgument(f"{self.catalog.path}: {err}") from None

    def _index(self, desc: oci.Descriptor, index: oci.Index) -> dict[str, str]:
        parent = f"index {desc.digest}"
        children = index.images()
        if self.platforms is not None:
            children = [child for child in children if self._matches(child)]
            if not children:
                raise NotFound(f"{self.catalog.path}: {parent}: no manifest for the platforms")
        required = self.platforms is not None
        walked = [child for child in children if self.walk(child, parent, required=required)]
        if not walked:
            raise NotFound(
                f"{self.catalog.path}: {parent}: none of its {len(children)} manifests is in "
                "the archive"
            )
        return index_labels(walked)

    def _matches(self, child: oci.Descriptor) -> bool:
        assert self.platforms is not None
        return child.platform is None or self.platforms.match(child.platform.spec())

    def _manifest(self, desc: oci.Descriptor, manifest: oci.Manifest) -> dict[str, str]:
        parent = f"manifest {desc.digest}"
        config = manifest.config
        self.walk(config, parent, required=True)
        config_entry, member = self.catalog.resolve(blob_entry(config.digest), "config")
        data = read_document(self.catalog, config_entry, member.size, config)
        self.plan.blobs[config_entry].data = data
        oci.decode_config(data, config, len(manifest.layers))
        # A foreign layer (with URLs) may be left out of an archive, as registries do.
        layers = [
            layer for layer in manifest.layers if self.walk(layer, parent, required=not layer.urls)
        ]
        return manifest_labels(config, layers)
