"""``ctr images export``'s core: images from a content store into an OCI image layout tarball.

The tar holds ``oci-layout``, ``blobs/<alg>/<hex>`` (each blob once, its bytes checked against
its digest as they are copied), ``index.json`` with one entry per image name (annotated
``io.containerd.image.name`` and ``org.opencontainers.image.ref.name``, as containerd writes
them), and, unless told not to, a Docker ``manifest.json`` so that ``docker load`` reads it
too. Entries are sorted by name, as containerd's exporter writes them.

Of an index, the manifests matching ``platforms`` are exported (they must be in the store);
without ``platforms``, every manifest the store has (an image pulled for one platform exports
that one). ``manifest.json`` lists one manifest per image: a manifest target itself, or of an
index the best exported one for ``platforms`` (this node's platform when not given).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import msgspec

from flotilla.common import digests
from flotilla.common.errdefs import DataLoss, InvalidArgument, NotFound
from flotilla.content.helpers import iter_range, read_blob
from flotilla.content.store import Manager, Provider
from flotilla.images import oci
from flotilla.images.archive.layout import LAYOUT_VERSION, blob_entry
from flotilla.images.archive.names import familiar_tag, name_annotations
from flotilla.images.archive.tarwriter import TarOut
from flotilla.images.platforms import Matcher, default, only

__all__ = ["Source", "export_archive"]

_SOURCE = "containerd.io/distribution.source."


class Source(Provider, Manager, Protocol):
    """What an export reads: blobs and their info."""


async def export_archive(
    out: BinaryIO | Path,
    provider: Source,
    namespace: str,
    images: Sequence[tuple[str, oci.Descriptor]],
    *,
    platforms: Matcher | None = None,
    docker_manifest: bool = True,
) -> None:
    """Write ``images`` (name and target) from ``provider`` as a tar to ``out``.

    A file at a path ``out`` is removed again when the export fails; a stream is left as far
    as it got.

    Raises:
        InvalidArgument: a target that is neither an index nor a manifest, or a bad document.
        NotFound: a blob an image needs is not in the store, or an index has no manifest
            for ``platforms``.
        DataLoss: the store returned bytes that are not what their digest says.
    """
    walk = _Walk(provider, namespace, platforms)
    entries = []
    for name, target in images:
        await walk.target(name, target)
        annotations = {**target.annotations, **await walk.sources(target)}
        annotations.update(name_annotations(name))
        entries.append(msgspec.structs.replace(target, annotations=annotations))
    index = oci.Index(schema_version=2, media_type=oci.OCI_INDEX, manifests=entries)
    files = {
        "index.json": oci.encode(index),
        "oci-layout": msgspec.json.encode({"imageLayoutVersion": LAYOUT_VERSION}),
    }
    if docker_manifest:
        files["manifest.json"] = walk.docker_manifest(images)
    if isinstance(out, Path):
        await _to_path(out, walk, files)
    else:
        await _write(TarOut(out), walk, files)


async def _to_path(path: Path, walk: _Walk, files: dict[str, bytes]) -> None:
    stream = await asyncio.to_thread(path.open, "wb")
    try:
        await _write(TarOut(stream), walk, files)
    except BaseException:
        await asyncio.to_thread(stream.close)
        with contextlib.suppress(OSError):
            await asyncio.to_thread(path.unlink)
        raise
    await asyncio.to_thread(stream.close)


async def _write(tar: TarOut, walk: _Walk, files: dict[str, bytes]) -> None:
    await tar.directory("blobs/")
    for algorithm in sorted({digests.parse(d).algorithm for d in walk.blobs}):
        await tar.directory(f"blobs/{algorithm}/")
    for digest in sorted(walk.blobs):
        await _blob(tar, walk, walk.blobs[digest])
    for name in sorted(files):
        await tar.file(name, files[name])
    await tar.close()


async def _blob(tar: TarOut, walk: _Walk, desc: oci.Descriptor) -> None:
    parsed = digests.parse(desc.digest)
    hasher = digests.hasher(parsed.algorithm)
    async with await walk.provider.reader_at(walk.namespace, desc.digest) as reader:
        if reader.size != desc.size:
            raise DataLoss(f"blob {desc.digest}: {reader.size} bytes in the store, not {desc.size}")
        written = await tar.stream(blob_entry(desc.digest), desc.size, iter_range(reader), hasher)
    actual = str(digests.Digest.of(hasher))
    if written != desc.size or actual != desc.digest:
        raise DataLoss(f"blob {desc.digest}: the store returned bytes with digest {actual}")


class _Walk:
    """The blobs of the images to export, found from their targets down."""

    def __init__(self, provider: Source, namespace: str, platforms: Matcher | None) -> None:
        self.provider = provider
        self.namespace = namespace
        self.platforms = platforms
        self.blobs: dict[str, oci.Descriptor] = {}
        self._manifests: dict[str, oci.Manifest] = {}
        self._children: dict[str, list[oci.Descriptor]] = {}

    async def target(self, name: str, target: oci.Descriptor) -> None:
        """Find the blobs of the image ``name``."""
        if not (oci.is_index(target.media_type) or oci.is_manifest(target.media_type)):
            raise InvalidArgument(
                f"image {name}: target {target.digest} has media type "
                f"{target.media_type!r}, not an index or manifest"
            )
        await self._walk(target, f"image {name}", required=True)

    async def sources(self, target: oci.Descriptor) -> dict[str, str]:
        """The target's ``distribution.source`` labels, which containerd exports as annotations."""
        info = await self.provider.info(self.namespace, target.digest)
        return {k: v for k, v in info.labels.items() if k.startswith(_SOURCE)}

    async def _walk(self, desc: oci.Descriptor, parent: str, *, required: bool) -> bool:
        if desc.digest in self.blobs:
            return True
        try:
            info = await self.provider.info(self.namespace, desc.digest)
        except NotFound:
            if required:
                raise NotFound(
                    f"{oci.ref_key(desc).partition('-')[0]} {desc.digest} named by {parent}: "
                    "not in the content store"
                ) from None
            return False
        if info.size != desc.size:
            raise DataLoss(f"blob {desc.digest}: {info.size} bytes in the store, not {desc.size}")
        if oci.is_index(desc.media_type):
            await self._index(desc)
        elif oci.is_manifest(desc.media_type):
            await self._manifest(desc)
        self.blobs[desc.digest] = oci.Descriptor(
            media_type=desc.media_type, digest=desc.digest, size=desc.size
        )
        return True

    async def _document(self, desc: oci.Descriptor) -> bytes:
        oci.check_document_size(desc)
        return await read_blob(self.provider, self.namespace, desc.digest)

    async def _index(self, desc: oci.Descriptor) -> None:
        index = oci.decode_index(await self._document(desc), desc)
        parent = f"index {desc.digest}"
        children = index.images()
        if self.platforms is not None:
            platforms = self.platforms
            children = [
                child
                for child in children
                if child.platform is None or platforms.match(child.platform.spec())
            ]
            if not children:
                raise NotFound(f"{parent}: no manifest for the platforms")
        required = self.platforms is not None
        found = [child for child in children if await self._walk(child, parent, required=required)]
        if not found:
            raise NotFound(f"{parent}: none of its manifests is in the content store")
        self._children[desc.digest] = found

    async def _manifest(self, desc: oci.Descriptor) -> None:
        manifest = oci.decode_manifest(await self._document(desc), desc)
        parent = f"manifest {desc.digest}"
        await self._walk(manifest.config, parent, required=True)
        layers = [
            layer
            for layer in manifest.layers
            if await self._walk(layer, parent, required=not layer.urls)
        ]
        self._manifests[desc.digest] = msgspec.structs.replace(manifest, layers=layers)

    def docker_manifest(self, images: Sequence[tuple[str, oci.Descriptor]]) -> bytes:
        """``manifest.json``: per manifest, its config, layers and familiar tagged names."""
        names: dict[str, list[str]] = {}
        for name, target in images:
            chosen = self._docker_target(target)
            if chosen is not None:
                tags = names.setdefault(chosen, [])
                tag = familiar_tag(name)
                if tag is not None and tag not in tags:
                    tags.append(tag)
        entries = []
        for digest, tags in names.items():
            manifest = self._manifests[digest]
            entries.append(
                {
                    "Config": blob_entry(manifest.config.digest),
                    "RepoTags": tags,
                    "Layers": [blob_entry(layer.digest) for layer in manifest.layers],
                }
            )
        return msgspec.json.encode(entries)

    def _docker_target(self, target: oci.Descriptor) -> str | None:
        """The manifest ``manifest.json`` lists for ``target``, if any."""
        if oci.is_manifest(target.media_type):
            return target.digest
        matcher = self.platforms or only(default())
        ranked = []
        for position, child in enumerate(self._children.get(target.digest, [])):
            if not oci.is_manifest(child.media_type) or child.platform is None:
                continue
            rank = matcher.rank(child.platform.spec())
            if rank is not None:
                ranked.append((rank, position, child.digest))
        return min(ranked)[2] if ranked else None
