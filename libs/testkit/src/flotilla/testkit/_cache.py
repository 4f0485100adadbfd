"""Build an image layout once per recipe and reuse it while it stays intact."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flotilla.testkit.layout import LayoutWriter
from flotilla.testkit.oci import REF_NAME, Descriptor, canonical_json
from flotilla.testkit.validate import LayoutError, validate_layout

__all__ = ["BUILDER_VERSION", "cached_layout"]

BUILDER_VERSION = 1  # bump when a change to the builders changes any byte they write


def _recipe_key(name: str, recipe: Mapping[str, Any]) -> str:
    body = canonical_json({"builder": BUILDER_VERSION, "name": name, "recipe": dict(recipe)})
    return hashlib.sha256(body).hexdigest()[:16]


def _reuse(layout: Path, marker: Path) -> Descriptor | None:
    """The image descriptor of a complete, intact cached layout, else None."""
    if not marker.is_file() or not layout.is_dir():
        return None
    try:
        validate_layout(layout, verify_digests=False)
    except (LayoutError, OSError, ValueError, KeyError):
        return None
    return Descriptor.from_json(json.loads(marker.read_text()))


def cached_layout(
    cache_dir: Path,
    name: str,
    recipe: Mapping[str, Any],
    build: Callable[[LayoutWriter], Descriptor],
    tag: str,
) -> tuple[Path, Descriptor]:
    """The layout for ``(name, recipe)`` under ``cache_dir``, building it if needed.

    ``build`` writes blobs and returns the image's manifest or index descriptor; it is
    tagged ``tag`` in ``index.json``. The layout is built in a temp dir and renamed into
    place; a marker written last records that it is complete.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    layout = cache_dir / f"{name}-{_recipe_key(name, recipe)}"
    marker = cache_dir / f"{layout.name}.json"
    if (desc := _reuse(layout, marker)) is not None:
        return layout, desc
    marker.unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir))
    try:
        desc = _build_into(tmp, build, tag)
        shutil.rmtree(layout, ignore_errors=True)
        tmp.rename(layout)
    except OSError:
        # Another process may have built the same recipe meanwhile: take theirs if intact.
        if (theirs := _reuse(layout, marker)) is None:
            raise
        return layout, theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker.write_bytes(canonical_json(desc.to_json()))
    return layout, desc


def _build_into(
    directory: Path, build: Callable[[LayoutWriter], Descriptor], tag: str
) -> Descriptor:
    writer = LayoutWriter(directory)
    desc = build(writer)
    tagged = Descriptor(desc.media_type, desc.digest, desc.size, annotations={REF_NAME: tag})
    writer.write_index([tagged])
    directory.chmod(0o755)  # mkdtemp makes it 0700
    return desc
