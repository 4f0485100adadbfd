"""The offline test images, built from scratch with stable digests.

- ``busybox``: one layer, Debian's static busybox, for the host platform.
- ``large``: 8 layers (busybox + ``flotilla.testkit.large``), about ``size`` bytes.
- ``multiarch``: an index of linux/amd64 and linux/arm64 busybox manifests (the arm64 one
  reuses the same layer bytes under an arm64 config, so it only *looks* arm64).

Building is deterministic (same inputs, same digests) and cached per recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotilla.testkit._cache import cached_layout
from flotilla.testkit.busybox import DEFAULT_BUSYBOX, PATH_ENV, busybox_rootfs
from flotilla.testkit.large import DEFAULT_LARGE_SIZE, large_layers
from flotilla.testkit.layout import LayoutWriter
from flotilla.testkit.oci import (
    CONFIG,
    INDEX,
    LAYER_GZIP,
    MANIFEST,
    Descriptor,
    Platform,
    host_platform,
)
from flotilla.testkit.programs import require_file
from flotilla.testkit.tarlayer import WrittenLayer
from flotilla.testkit.validate import file_digest

__all__ = [
    "CREATED",
    "MULTIARCH_PLATFORMS",
    "BuiltImage",
    "build_busybox",
    "build_large",
    "build_multiarch",
]

CREATED = "1970-01-01T00:00:00Z"
MULTIARCH_PLATFORMS = (Platform("linux", "amd64"), Platform("linux", "arm64"))
DEFAULT_TAG = "latest"


@dataclass(frozen=True)
class BuiltImage:
    """An image in an OCI layout on disk.

    Attributes:
        name: ``busybox``, ``large`` or ``multiarch``; also its default repository.
        layout: The OCI image layout directory.
        tag: Its ``org.opencontainers.image.ref.name`` in ``index.json``.
        descriptor: The image's manifest (or, for multiarch, index) descriptor.
    """

    name: str
    layout: Path
    tag: str
    descriptor: Descriptor

    @property
    def digest(self) -> str:
        """The manifest or index digest, as a registry reports it."""
        return self.descriptor.digest

    @property
    def oci_reference(self) -> str:
        """``oci:<layout>:<tag>``, the image's name for skopeo."""
        return f"oci:{self.layout}:{self.tag}"


def _config(diff_ids: Sequence[str], platform: Platform, steps: Sequence[str]) -> dict[str, Any]:
    return {
        "created": CREATED,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Cmd": ["sh"], "Env": [PATH_ENV], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": CREATED, "created_by": step} for step in steps],
    }


def _manifest(
    writer: LayoutWriter, layers: Sequence[WrittenLayer], platform: Platform, steps: Sequence[str]
) -> Descriptor:
    """Write config and manifest for ``layers``; returns the manifest descriptor."""
    config = writer.add_json(CONFIG, _config([x.diff_id for x in layers], platform, steps))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.to_json(),
        "layers": [Descriptor(LAYER_GZIP, x.digest, x.size).to_json() for x in layers],
    }
    return writer.add_json(MANIFEST, manifest, platform=platform)


def build_busybox(cache_dir: Path, *, busybox: Path = DEFAULT_BUSYBOX) -> BuiltImage:
    """Build (or reuse) the one-layer busybox image for the host platform."""
    platform = host_platform()
    recipe = {"busybox": _busybox_digest(busybox), "platform": str(platform)}

    def build(writer: LayoutWriter) -> Descriptor:
        layer = writer.add_layer(busybox_rootfs(busybox))
        return _manifest(writer, [layer], platform, ["busybox"])

    return _built("busybox", cache_dir, recipe, build)


def build_large(
    cache_dir: Path, *, size: int = DEFAULT_LARGE_SIZE, busybox: Path = DEFAULT_BUSYBOX
) -> BuiltImage:
    """Build (or reuse) the 8-layer image of about ``size`` bytes on top of busybox."""
    platform = host_platform()
    recipe = {"busybox": _busybox_digest(busybox), "platform": str(platform), "size": size}

    def build(writer: LayoutWriter) -> Descriptor:
        layers = [writer.add_layer(busybox_rootfs(busybox))]
        layers += [writer.add_layer(entries) for entries in large_layers(size)]
        steps = ["busybox", *(f"large layer {i}" for i in range(2, len(layers) + 1))]
        return _manifest(writer, layers, platform, steps)

    return _built(f"large-{size}", cache_dir, recipe, build, name="large")


def build_multiarch(cache_dir: Path, *, busybox: Path = DEFAULT_BUSYBOX) -> BuiltImage:
    """Build (or reuse) the linux/amd64 + linux/arm64 index."""
    recipe = {"busybox": _busybox_digest(busybox)}

    def build(writer: LayoutWriter) -> Descriptor:
        layer = writer.add_layer(busybox_rootfs(busybox))
        manifests = [_manifest(writer, [layer], p, ["busybox"]) for p in MULTIARCH_PLATFORMS]
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [desc.to_json() for desc in manifests],
        }
        return writer.add_json(INDEX, index)

    return _built("multiarch", cache_dir, recipe, build)


def _busybox_digest(busybox: Path) -> str:
    """The recipe's busybox digest; a missing busybox is a ``MissingProgram``, named."""
    return file_digest(require_file(busybox, "busybox"))


def _built(
    key: str,
    cache_dir: Path,
    recipe: dict[str, Any],
    build: Callable[[LayoutWriter], Descriptor],
    *,
    name: str | None = None,
) -> BuiltImage:
    layout, desc = cached_layout(cache_dir, key, recipe, build, DEFAULT_TAG)
    return BuiltImage(name or key, layout, DEFAULT_TAG, desc)
