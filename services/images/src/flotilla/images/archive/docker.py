"""Planning the import of a ``docker save`` tarball, and the manifests it gets.

``manifest.json`` lists the images: a config file, the layer files (often ``<id>/layer.tar``,
and a symlink where two images share one), and the RepoTags. As containerd does, each image
becomes a Docker schema 2 manifest: the config with the Docker config media type, each layer
as it lies in the archive with ``...rootfs.diff.tar.gzip`` when it is gzip-compressed and
``...rootfs.diff.tar`` when not. A layer's digest is known only once it is written. The
legacy ``repositories`` file is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from flotilla.common import digests
from flotilla.common.errdefs import InvalidArgument
from flotilla.images import oci
from flotilla.images.archive.entries import Catalog
from flotilla.images.archive.layout import read_document
from flotilla.images.archive.names import normalize_repo_tag
from flotilla.images.archive.plan import Blob, Plan
from flotilla.images.labels import manifest_labels
from flotilla.images.platforms import Platform as PlatformSpec
from flotilla.images.platforms import normalize

__all__ = [
    "DOCKER_LAYER_TAR",
    "DockerImage",
    "build_manifest",
    "layer_media_type",
    "manifest_of",
    "plan_docker",
]

DOCKER_LAYER_TAR: Final = "application/vnd.docker.image.rootfs.diff.tar"
_GZIP: Final = b"\x1f\x8b"
_ZSTD: Final = b"\x28\xb5\x2f\xfd"


class _Entry(msgspec.Struct, frozen=True):
    config: str = msgspec.field(name="Config")
    layers: list[str] = msgspec.field(name="Layers")
    repo_tags: list[str] | None = msgspec.field(default=None, name="RepoTags")


@dataclass
class DockerImage:
    """One ``manifest.json`` entry: its blobs, the platform of its config, its names."""

    config: Blob
    layers: list[Blob]
    platform: oci.Platform | None
    names: list[str]


def plan_docker(catalog: Catalog) -> tuple[Plan, list[DockerImage]]:
    """The config and layer files to write, and the images to build from them.

    Raises:
        InvalidArgument: a bad ``manifest.json``, config or RepoTag, or one name for two images.
        NotFound: a config or layer file is not in the archive.
    """
    plan, images = Plan(), []
    try:
        entries = msgspec.json.decode(catalog.docs["manifest.json"], type=list[_Entry])
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise InvalidArgument(f"{catalog.path}: manifest.json: {err}") from None
    if not entries:
        raise InvalidArgument(f"{catalog.path}: manifest.json lists no image")
    named: set[str] = set()
    for entry in entries:
        image = _plan_image(catalog, plan, entry)
        for name in image.names:
            if name in named:
                raise InvalidArgument(f"{catalog.path}: manifest.json names two images {name!r}")
            named.add(name)
        images.append(image)
    return plan, images


def _plan_image(catalog: Catalog, plan: Plan, entry: _Entry) -> DockerImage:
    config_entry, member = catalog.resolve(entry.config, "image config")
    data = catalog.docs.get(config_entry, b"")
    desc = oci.Descriptor(
        media_type=oci.DOCKER_CONFIG, digest=digests.digest_of(data), size=member.size
    )
    read_document(catalog, config_entry, member.size, desc)
    try:
        config = oci.decode_config(data, desc, len(entry.layers))
    except InvalidArgument as err:
        raise InvalidArgument(f"{catalog.path}: {config_entry}: {err}") from None
    config_blob = plan.add(Blob(config_entry, member, desc, data=data))
    layers = []
    for name in entry.layers:
        layer_entry, layer = catalog.resolve(name, "layer")
        layers.append(plan.add(Blob(layer_entry, layer, None)))
    platform = None
    if config.os and config.architecture:
        spec = normalize(PlatformSpec(config.os, config.architecture, config.variant))
        platform = oci.Platform(architecture=spec.architecture, os=spec.os, variant=spec.variant)
    names = [normalize_repo_tag(tag) for tag in entry.repo_tags or []]
    return DockerImage(config_blob, layers, platform, names)


def layer_media_type(head: bytes, entry: str) -> str:
    """A layer's media type from its first bytes, as containerd detects it.

    Raises:
        InvalidArgument: for a zstd-compressed layer, which Docker's format cannot name.
    """
    if head.startswith(_GZIP):
        return oci.DOCKER_LAYER
    if head.startswith(_ZSTD):
        raise InvalidArgument(f"{entry}: a zstd-compressed layer, not in a docker save tarball")
    return DOCKER_LAYER_TAR


def build_manifest(config: oci.Descriptor, layers: Sequence[oci.Descriptor]) -> bytes:
    """The schema 2 manifest of ``config`` and ``layers``, its fields in containerd's order."""
    return msgspec.json.encode(
        {
            "schemaVersion": 2,
            "mediaType": oci.DOCKER_MANIFEST,
            "config": config,
            "layers": list(layers),
        }
    )


def manifest_of(image: DockerImage) -> tuple[bytes, oci.Descriptor, dict[str, str]]:
    """The manifest of a written ``image``: bytes, descriptor (with platform) and gc labels."""
    assert image.config.desc is not None
    layers = [layer.desc for layer in image.layers if layer.desc is not None]
    data = build_manifest(image.config.desc, layers)
    desc = oci.Descriptor(
        media_type=oci.DOCKER_MANIFEST,
        digest=digests.digest_of(data),
        size=len(data),
        platform=image.platform,
    )
    return data, desc, manifest_labels(image.config.desc, layers)
