"""Write and read OCI image layouts (``oci-layout``, ``index.json``, ``blobs/sha256/``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flotilla.testkit.oci import INDEX, Descriptor, Platform, canonical_json
from flotilla.testkit.tarlayer import Entry, WrittenLayer, write_layer

__all__ = ["LAYOUT_VERSION", "LayoutWriter", "blob_path", "read_index", "read_json"]

LAYOUT_VERSION = "1.0.0"


def blob_path(layout: Path, digest: str) -> Path:
    """Where the blob ``digest`` lives in ``layout``."""
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def read_json(layout: Path, desc: Descriptor) -> Any:
    """The parsed JSON blob ``desc`` points to."""
    return json.loads(blob_path(layout, desc.digest).read_bytes())


def read_index(layout: Path) -> list[Descriptor]:
    """The descriptors listed in the layout's ``index.json``."""
    index = json.loads((layout / "index.json").read_text())
    return [Descriptor.from_json(item) for item in index.get("manifests", [])]


class LayoutWriter:
    """Fills an OCI image layout directory blob by blob, then writes its ``index.json``.

    Blobs are content addressed: writing the same bytes twice stores them once.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
        (root / "oci-layout").write_bytes(layout)

    def add_bytes(
        self, media_type: str, data: bytes, *, platform: Platform | None = None
    ) -> Descriptor:
        """Store ``data``; returns its descriptor."""
        desc = Descriptor.of(media_type, data, platform=platform)
        path = blob_path(self.root, desc.digest)
        if not path.exists():
            path.write_bytes(data)
        return desc

    def add_json(
        self, media_type: str, value: Any, *, platform: Platform | None = None
    ) -> Descriptor:
        """Store ``value`` as canonical JSON; returns its descriptor."""
        return self.add_bytes(media_type, canonical_json(value), platform=platform)

    def add_layer(self, entries: Iterable[Entry]) -> WrittenLayer:
        """Write a gzip'd tar layer of ``entries`` straight into the blob store."""
        fd, tmp = tempfile.mkstemp(prefix=".layer-", dir=self.root)
        os.close(fd)
        try:
            layer = write_layer(entries, Path(tmp))
            final = blob_path(self.root, layer.digest)
            shutil.move(tmp, final)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return WrittenLayer(final, layer.digest, layer.size, layer.diff_id)

    def write_index(self, manifests: Iterable[Descriptor]) -> None:
        """Write ``index.json`` listing ``manifests`` (tag them with ``REF_NAME``)."""
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [desc.to_json() for desc in manifests],
        }
        (self.root / "index.json").write_bytes(canonical_json(index))
