"""Get built images out: push them to a registry with skopeo, or export an OCI tarball."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from flotilla.testkit._proc import run
from flotilla.testkit.images import BuiltImage, build_busybox, build_large, build_multiarch
from flotilla.testkit.large import DEFAULT_LARGE_SIZE
from flotilla.testkit.oci import canonical_json
from flotilla.testkit.programs import require
from flotilla.testkit.tarlayer import EPOCH

__all__ = [
    "ImageSet",
    "PublishedImages",
    "build_images",
    "export_oci_tar",
    "publish_images",
    "push_image",
]

CONTAINERD_IMAGE_NAME = "io.containerd.image.name"


@dataclass(frozen=True)
class ImageSet:
    """The three test images, built."""

    busybox: BuiltImage
    large: BuiltImage
    multiarch: BuiltImage

    def __iter__(self) -> Iterator[BuiltImage]:
        return iter((self.busybox, self.large, self.multiarch))


@dataclass(frozen=True)
class PublishedImages:
    """The test images and where they were pushed.

    Attributes:
        images: The built images.
        host: The registry, ``127.0.0.1:PORT``.
        refs: Image name -> ``host/name:tag``.
    """

    images: ImageSet
    host: str
    refs: Mapping[str, str]

    def ref(self, name: str) -> str:
        """The registry reference of image ``name`` (``busybox``, ``large``, ``multiarch``)."""
        return self.refs[name]


async def build_images(cache_dir: Path, *, large_size: int = DEFAULT_LARGE_SIZE) -> ImageSet:
    """Build (or reuse from ``cache_dir``) all test images, off the event loop."""

    def build() -> ImageSet:
        return ImageSet(
            build_busybox(cache_dir),
            build_large(cache_dir, size=large_size),
            build_multiarch(cache_dir),
        )

    return await asyncio.to_thread(build)


async def push_image(
    image: BuiltImage,
    host: str,
    *,
    repo: str | None = None,
    tag: str | None = None,
    creds: tuple[str, str] | None = None,
) -> str:
    """Push ``image`` (all platforms, digests preserved) over plain http; returns the ref.

    ``creds`` (user, password) log in to a registry with basic or token authentication.

    Raises:
        MissingProgram: ``skopeo`` is not installed.
    """
    require("skopeo")
    ref = f"{host}/{repo or image.name}:{tag or image.tag}"
    login = [f"--dest-creds={creds[0]}:{creds[1]}"] if creds else []
    await run(
        "skopeo", "--insecure-policy", "copy", "--quiet", "--all", "--preserve-digests",
        "--dest-tls-verify=false", *login, image.oci_reference, f"docker://{ref}",
    )  # fmt: skip
    return ref


async def publish_images(
    images: ImageSet, host: str, *, creds: tuple[str, str] | None = None
) -> PublishedImages:
    """Push every image in ``images`` to the registry at ``host`` (as ``creds``, if given)."""
    refs = await asyncio.gather(*(push_image(image, host, creds=creds) for image in images))
    return PublishedImages(images, host, {i.name: r for i, r in zip(images, refs, strict=True)})


async def export_oci_tar(image: BuiltImage, dest: Path, *, image_name: str | None = None) -> Path:
    """Write ``image``'s layout as an uncompressed, deterministic OCI tarball at ``dest``.

    Args:
        image: The image to export.
        dest: The tarball to write.
        image_name: If given, recorded as ``io.containerd.image.name`` so that
            ``ctr images import`` names the image; otherwise import it with
            ``ctr images import --base-name <name>``, which appends the tag.
    """
    await asyncio.to_thread(_export, image.layout, dest, image_name)
    return dest


def _export(layout: Path, dest: Path, image_name: str | None) -> None:
    index = json.loads((layout / "index.json").read_text())
    if image_name is not None:
        for desc in index["manifests"]:
            desc.setdefault("annotations", {})[CONTAINERD_IMAGE_NAME] = image_name
    with tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, "oci-layout", data=(layout / "oci-layout").read_bytes())
        _add(tar, "index.json", data=canonical_json(index))
        _add(tar, "blobs")
        _add(tar, "blobs/sha256")
        for blob in sorted((layout / "blobs" / "sha256").iterdir()):
            _add(tar, f"blobs/sha256/{blob.name}", source=blob)


def _add(
    tar: tarfile.TarFile, name: str, *, data: bytes | None = None, source: Path | None = None
) -> None:
    """Add a file from ``data`` or ``source``, or a directory if neither is given."""
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = EPOCH, 0o644
    if data is None and source is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    elif source is not None:
        info.size = source.stat().st_size
        with source.open("rb") as stream:
            tar.addfile(info, stream)
    else:
        info.size = len(data or b"")
        tar.addfile(info, io.BytesIO(data or b""))
