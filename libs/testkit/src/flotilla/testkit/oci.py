"""The OCI vocabulary the image builder and validator share: media types, digests, descriptors."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CONFIG",
    "INDEX",
    "LAYER_GZIP",
    "MANIFEST",
    "MANIFEST_ACCEPT",
    "REF_NAME",
    "Descriptor",
    "Platform",
    "canonical_json",
    "host_platform",
    "sha256_digest",
]

MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
INDEX: Final = "application/vnd.oci.image.index.v1+json"
CONFIG: Final = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME: Final = "org.opencontainers.image.ref.name"

# What a client sends so the registry returns OCI and Docker manifests and indexes unconverted.
MANIFEST_ACCEPT: Final = ", ".join(
    [
        MANIFEST,
        INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace: the same value always gives the same bytes and digest."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Platform:
    """An OCI platform (``os``/``architecture``[/``variant``])."""

    os: str
    architecture: str
    variant: str | None = None

    def to_json(self) -> dict[str, str]:
        """The OCI ``platform`` object."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Platform:
    """The platform of this machine (x86_64 -> amd64, aarch64 -> arm64)."""
    machine = os.uname().machine
    return Platform("linux", _ARCH.get(machine, machine))


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The OCI descriptor object."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        out["size"] = self.size
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Descriptor:
        """Parse an OCI descriptor object (unknown fields are ignored)."""
        plat = value.get("platform")
        return cls(
            media_type=value["mediaType"],
            digest=value["digest"],
            size=int(value["size"]),
            platform=Platform(plat["os"], plat["architecture"], plat.get("variant"))
            if plat
            else None,
            annotations=dict(value.get("annotations") or {}),
        )

    @classmethod
    def of(
        cls,
        media_type: str,
        data: bytes,
        *,
        platform: Platform | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """The descriptor of ``data``."""
        digest = sha256_digest(data)
        return cls(media_type, digest, len(data), platform, dict(annotations or {}))
