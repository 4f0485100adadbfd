"""OCI and Docker image JSON: media types, descriptors, manifests, indexes and configs.

Every document is decoded strictly (msgspec Structs, field names as the JSON spells them), so
a manifest with a wrong ``mediaType``, a missing config or a malformed digest is refused with
an error naming the blob. Manifests, indexes and configs larger than containerd's 4 MiB are
refused before they are read.
"""

from __future__ import annotations

import re
from typing import Any, Final, Protocol, TypeVar

import msgspec

from flotilla.common import errdefs
from flotilla.images.platforms import Platform as PlatformSpec

__all__ = [
    "CONFIG_TYPES",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "INDEX_TYPES",
    "LAYER_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "MAX_DOCUMENT",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Descriptor",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "RootFS",
    "Described",
    "check_digest",
    "check_document_size",
    "decode_config",
    "decode_index",
    "decode_manifest",
    "descriptor_of",
    "encode",
    "is_index",
    "is_manifest",
    "ref_key",
]

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIG_TYPES: Final = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES: Final = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        DOCKER_LAYER,
        DOCKER_FOREIGN_LAYER,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
    }
)

MANIFEST_ACCEPT: Final = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX, "*/*"])
"""The ``Accept`` header of a manifest request (containerd's order)."""

MAX_DOCUMENT: Final = 4 << 20
"""containerd's limit on a manifest's, an index's or a config's size."""

_DIGEST: Final = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_SHA256: Final = re.compile(r"^sha256:[a-f0-9]{64}$")
_SHA512: Final = re.compile(r"^sha512:[a-f0-9]{128}$")


class Platform(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    """An index entry's platform."""

    architecture: str
    os: str
    os_version: str = msgspec.field(default="", name="os.version")
    os_features: list[str] = msgspec.field(default_factory=list, name="os.features")
    variant: str = ""

    def spec(self) -> PlatformSpec:
        """As :mod:`flotilla.images.platforms` matches it."""
        return PlatformSpec(self.os, self.architecture, self.variant)


class Descriptor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    urls: list[str] = []
    annotations: dict[str, str] = {}
    platform: Platform | None = None
    artifact_type: str = ""


class Index(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    """An OCI image index or a Docker manifest list."""

    schema_version: int
    manifests: list[Descriptor]
    media_type: str = ""
    annotations: dict[str, str] = {}

    def images(self) -> list[Descriptor]:
        """The entries that are image manifests or indexes (not artifacts of other types)."""
        return [d for d in self.manifests if is_manifest(d.media_type) or is_index(d.media_type)]


class Manifest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel"):
    """An OCI image manifest or a Docker schema 2 manifest."""

    schema_version: int
    config: Descriptor
    layers: list[Descriptor]
    media_type: str = ""
    annotations: dict[str, str] = {}


class RootFS(msgspec.Struct, frozen=True, kw_only=True):
    """An image config's layer list."""

    type: str
    diff_ids: list[str]


class ImageConfig(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The parts of an image config Flotilla reads (the rest is kept as it came)."""

    architecture: str = ""
    os: str = ""
    variant: str = ""
    rootfs: RootFS
    config: dict[str, Any] = {}
    created: str = ""


_T = TypeVar("_T")
_decoders: Final[dict[type[Any], msgspec.json.Decoder[Any]]] = {
    kind: msgspec.json.Decoder(kind) for kind in (Index, Manifest, ImageConfig)
}
_encoder: Final = msgspec.json.Encoder()


def encode(document: msgspec.Struct) -> bytes:
    """``document`` as JSON (field order as declared, defaults left out)."""
    return _encoder.encode(document)


def is_index(media_type: str) -> bool:
    """Whether the media type is an index or a manifest list."""
    return media_type in INDEX_TYPES


def is_manifest(media_type: str) -> bool:
    """Whether the media type is an image manifest."""
    return media_type in MANIFEST_TYPES


def check_digest(digest: str, what: str = "digest") -> str:
    """``digest`` if well formed (sha256 and sha512 lengths checked); else InvalidArgument."""
    ok = bool(_DIGEST.match(digest))
    if digest.startswith("sha256:"):
        ok = bool(_SHA256.match(digest))
    elif digest.startswith("sha512:"):
        ok = bool(_SHA512.match(digest))
    if not ok:
        raise errdefs.InvalidArgument(f"{what}: invalid digest {digest!r}")
    return digest


class Described(Protocol):
    """Anything with a descriptor's core: an image record's target, say."""

    @property
    def media_type(self) -> str:
        """The media type."""
        ...

    @property
    def digest(self) -> str:
        """The digest."""
        ...

    @property
    def size(self) -> int:
        """The size in bytes."""
        ...


def descriptor_of(target: Described) -> Descriptor:
    """``target``'s media type, digest and size as a :class:`Descriptor`."""
    return Descriptor(media_type=target.media_type, digest=target.digest, size=target.size)


def check_document_size(desc: Descriptor, size: int | None = None) -> None:
    """Refuse a manifest, index or config of more than :data:`MAX_DOCUMENT` bytes.

    Args:
        desc: the document.
        size: its bytes when known otherwise than by ``desc.size``.

    Raises:
        InvalidArgument: naming the document and its size.
    """
    size = desc.size if size is None else size
    if size > MAX_DOCUMENT:
        raise errdefs.InvalidArgument(
            f"{desc.media_type} {desc.digest}: {size} bytes, more than {MAX_DOCUMENT}"
        )


def _decode(kind: type[_T], data: bytes, desc: Descriptor) -> _T:
    check_document_size(desc, len(data))
    try:
        value: _T = _decoders[kind].decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise errdefs.InvalidArgument(f"{desc.media_type} {desc.digest}: {err}") from None
    return value


def _check_children(children: list[Descriptor], desc: Descriptor) -> None:
    for child in children:
        check_digest(child.digest, f"{desc.digest}: a child")
        if child.size < 0:
            raise errdefs.InvalidArgument(f"{desc.digest}: {child.digest} has a negative size")


def _check_type(declared: str, desc: Descriptor) -> None:
    if declared and declared != desc.media_type:
        raise errdefs.InvalidArgument(
            f"{desc.digest}: declares media type {declared!r}, expected {desc.media_type!r}"
        )


def decode_index(data: bytes, desc: Descriptor) -> Index:
    """The index blob ``data`` described by ``desc``.

    Raises:
        InvalidArgument: too large, malformed, or of another media type than ``desc`` says.
    """
    index = _decode(Index, data, desc)
    _check_type(index.media_type, desc)
    _check_children(index.manifests, desc)
    return index


def decode_manifest(data: bytes, desc: Descriptor) -> Manifest:
    """The manifest blob ``data`` described by ``desc`` (see :func:`decode_index`)."""
    manifest = _decode(Manifest, data, desc)
    _check_type(manifest.media_type, desc)
    _check_children([manifest.config, *manifest.layers], desc)
    if manifest.config.media_type not in CONFIG_TYPES:
        raise errdefs.InvalidArgument(
            f"{desc.digest}: config {manifest.config.digest} has media type "
            f"{manifest.config.media_type!r}, not an image config"
        )
    return manifest


def decode_config(data: bytes, desc: Descriptor, layers: int) -> ImageConfig:
    """The image config ``data``; its diffIDs must be one per layer.

    Raises:
        InvalidArgument: malformed, too large, or with another number of diffIDs.
    """
    config = _decode(ImageConfig, data, desc)
    if len(config.rootfs.diff_ids) != layers:
        raise errdefs.InvalidArgument(
            f"config {desc.digest}: {len(config.rootfs.diff_ids)} diffIDs for {layers} layers"
        )
    for diff_id in config.rootfs.diff_ids:
        check_digest(diff_id, f"config {desc.digest}: a diffID")
    return config


def ref_key(desc: Descriptor) -> str:
    """The ingest ref of a blob (containerd's ``remotes.MakeRefKey``)."""
    if is_manifest(desc.media_type):
        kind = "manifest"
    elif is_index(desc.media_type):
        kind = "index"
    elif desc.media_type in LAYER_TYPES or "layer" in desc.media_type:
        kind = "layer"
    elif desc.media_type in CONFIG_TYPES:
        kind = "config"
    else:
        kind = "unknown"
    return f"{kind}-{desc.digest}"
