"""Check an OCI image layout end to end: index -> manifests -> config and layers.

Every blob must exist with its declared size; with ``verify_digests`` its bytes must hash
to its digest and every layer must decompress to its config's diff id.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from flotilla.testkit.layout import LAYOUT_VERSION, blob_path, read_index, read_json
from flotilla.testkit.oci import CONFIG, INDEX, LAYER_GZIP, MANIFEST, Descriptor

__all__ = ["LayoutError", "file_digest", "gunzip_digest", "validate_layout"]

_CHUNK = 1 << 20


class LayoutError(ValueError):
    """The layout breaks the OCI image layout or image spec."""


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, streamed."""
    with path.open("rb") as stream:
        return "sha256:" + hashlib.file_digest(stream, "sha256").hexdigest()


def gunzip_digest(path: Path) -> str:
    """``sha256:<hex>`` of a gzip file's decompressed bytes (a layer's diff id)."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def validate_layout(layout: Path, *, verify_digests: bool = True) -> list[Descriptor]:
    """Validate ``layout``; returns every descriptor reached, each once, in walk order.

    Raises:
        LayoutError: The first problem found.
    """
    marker = json.loads((layout / "oci-layout").read_text())
    if marker.get("imageLayoutVersion") != LAYOUT_VERSION:
        raise LayoutError(f"{layout}: oci-layout version {marker!r}")
    walker = _Walker(layout, verify_digests)
    for desc in read_index(layout):
        walker.visit(desc)
    return list(walker.seen.values())


class _Walker:
    def __init__(self, layout: Path, verify: bool) -> None:
        self.layout = layout
        self.verify = verify
        self.seen: dict[str, Descriptor] = {}

    def visit(self, desc: Descriptor) -> None:
        if desc.digest in self.seen:
            return
        self.blob(desc)
        if desc.media_type == INDEX:
            self.index(desc)
        elif desc.media_type == MANIFEST:
            self.manifest(desc)
        else:
            raise LayoutError(f"{desc.digest}: {desc.media_type} is not a manifest or index")

    def blob(self, desc: Descriptor) -> None:
        path = blob_path(self.layout, desc.digest)
        if not path.is_file():
            raise LayoutError(f"blob {desc.digest} is missing")
        if path.stat().st_size != desc.size:
            raise LayoutError(f"blob {desc.digest}: size {path.stat().st_size} != {desc.size}")
        if self.verify and file_digest(path) != desc.digest:
            raise LayoutError(f"blob {desc.digest}: content does not match its digest")
        self.seen[desc.digest] = desc

    def document(self, desc: Descriptor) -> Any:
        doc = read_json(self.layout, desc)
        if doc.get("schemaVersion") != 2:
            raise LayoutError(f"{desc.digest}: schemaVersion {doc.get('schemaVersion')!r}")
        if doc.get("mediaType", desc.media_type) != desc.media_type:
            raise LayoutError(f"{desc.digest}: mediaType {doc['mediaType']} != {desc.media_type}")
        return doc

    def index(self, desc: Descriptor) -> None:
        for item in self.document(desc)["manifests"]:
            child = Descriptor.from_json(item)
            if child.platform is None:
                raise LayoutError(f"{desc.digest}: manifest {child.digest} has no platform")
            self.visit(child)

    def manifest(self, desc: Descriptor) -> None:
        doc = self.document(desc)
        config = Descriptor.from_json(doc["config"])
        layers = [Descriptor.from_json(item) for item in doc["layers"]]
        _expect(config, CONFIG)
        self.blob(config)
        for layer in layers:
            _expect(layer, LAYER_GZIP)
            self.blob(layer)
        self.diff_ids(config, layers)

    def diff_ids(self, config: Descriptor, layers: list[Descriptor]) -> None:
        diff_ids = read_json(self.layout, config)["rootfs"]["diff_ids"]
        if len(diff_ids) != len(layers):
            raise LayoutError(
                f"config {config.digest}: {len(diff_ids)} diff ids, {len(layers)} layers"
            )
        if not self.verify:
            return
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            if gunzip_digest(blob_path(self.layout, layer.digest)) != diff_id:
                raise LayoutError(f"layer {layer.digest} does not decompress to {diff_id}")


def _expect(desc: Descriptor, media_type: str) -> None:
    if desc.media_type != media_type:
        raise LayoutError(f"{desc.digest}: media type {desc.media_type}, expected {media_type}")
