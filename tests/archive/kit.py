"""Tiny images and hand-made tarballs for the archive tests, good and bad, built in memory."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.content.local import LocalStore

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_name(dgst: str) -> str:
    return "blobs/sha256/" + dgst.removeprefix("sha256:")


def canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def layer_tar(files: dict[str, bytes], *, compress: bool = True) -> bytes:
    """A layer holding ``files``, deterministic, gzip-compressed unless told not to."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(data), "size": len(data), **extra}


@dataclass
class Tiny:
    """An image's blobs by digest, and the descriptor ``index.json`` lists it by."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    config: str = ""

    def add(self, data: bytes) -> str:
        dgst = digest(data)
        self.blobs[dgst] = data
        return dgst


def tiny_manifest(
    image: Tiny, seed: str, arch: str = "amd64", *, layers: int = 1
) -> dict[str, Any]:
    """Add a config, ``layers`` layers and a manifest to ``image``; its descriptor."""
    blobs = [layer_tar({f"{seed}-{i}.txt": f"{seed} {i}\n".encode()}) for i in range(layers)]
    diff_ids = [digest(gzip.decompress(blob)) for blob in blobs]
    config = canonical(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )
    image.config = image.add(config)
    image.layers += [image.add(blob) for blob in blobs]
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": desc(CONFIG, config),
            "layers": [desc(LAYER_GZIP, blob) for blob in blobs],
        }
    )
    image.add(manifest)
    return desc(MANIFEST, manifest, platform={"architecture": arch, "os": "linux"})


def tiny_image(seed: str = "tiny", *, layers: int = 1) -> Tiny:
    """A one-manifest image."""
    image = Tiny()
    image.target = tiny_manifest(image, seed, layers=layers)
    return image


def tiny_index(seed: str = "multi") -> Tiny:
    """An index of a linux/amd64 and a linux/arm64 manifest."""
    image = Tiny()
    children = [tiny_manifest(image, f"{seed}-{arch}", arch) for arch in ("amd64", "arm64")]
    index = canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": children})
    image.add(index)
    image.target = desc(INDEX, index)
    return image


def index_json(*entries: dict[str, Any]) -> bytes:
    return canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": list(entries)})


def named(target: dict[str, Any], name: str, ref: str | None = None) -> dict[str, Any]:
    annotations = {"io.containerd.image.name": name}
    if ref is not None:
        annotations = {"org.opencontainers.image.ref.name": ref}
    return {**target, "annotations": annotations}


# --- tar entries ------------------------------------------------------------------------


Entry = tuple[tarfile.TarInfo, bytes | None]


def file(name: str, data: bytes) -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def symlink(name: str, target: str) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def hardlink(name: str, target: str) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


def special(name: str, kind: bytes = tarfile.FIFOTYPE) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


def layout_entries(*images: tuple[Tiny, dict[str, Any]]) -> list[Entry]:
    """An OCI layout of ``images``, each with its ``index.json`` entry."""
    entries = [file("oci-layout", OCI_LAYOUT)]
    seen: set[str] = set()
    for image, _ in images:
        for dgst, data in image.blobs.items():
            if dgst not in seen:
                seen.add(dgst)
                entries.append(file(blob_name(dgst), data))
    entries.append(file("index.json", index_json(*(entry for _, entry in images))))
    return entries


def write_tar(path: Path, entries: Iterable[Entry], *, compress: bool = False) -> Path:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = out.getvalue()
    path.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)
    return path


def without(entries: Sequence[Entry], name: str) -> list[Entry]:
    return [entry for entry in entries if entry[0].name != name]


def replaced(entries: Sequence[Entry], name: str, data: bytes) -> list[Entry]:
    return [file(name, data) if info.name == name else (info, d) for info, d in entries]


# --- the store after a failure -----------------------------------------------------------


async def blobs_in(store: LocalStore, namespace: str) -> dict[str, dict[str, str]]:
    """Every committed blob's digest and labels, each blob's bytes checked against it."""
    found = {}
    async for info in store.walk(namespace):
        path = await store.blob_path(namespace, info.digest)
        assert digest(path.read_bytes()) == info.digest
        found[info.digest] = dict(info.labels)
    return found


async def assert_clean(store: LocalStore, namespace: str) -> None:
    """No ingest is left open and every committed blob is what its digest says."""
    assert await store.list_statuses(namespace) == []
    await blobs_in(store, namespace)
