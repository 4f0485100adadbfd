"""Flotilla unpacks an image into the same tree containerd does, file by file.

The 8-layer ``large`` image (busybox, small files, big ones, hard and symbolic links, a
whiteout and an opaque directory) goes into a private containerd (``ctr images import``, then
``ctr images mount``) and into Flotilla (its blobs committed to a ``LocalStore``, then
``apply_layers`` with the ``LayerApplier`` into a ``LocalSnapshotter``, then a view of the top
snapshot mounted). The two trees must agree on every path's type, mode, owner, content,
symlink target, xattrs, hard links and modification time, and the snapshots must carry the
same chain IDs. Once with overlayfs on both sides, once with the native snapshotters.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest

from flotilla.content.local import LocalStore
from flotilla.snapshots.diff.apply import LayerApplier
from flotilla.snapshots.diff.differ import Descriptor
from flotilla.snapshots.layout import Layout
from flotilla.snapshots.local import LocalSnapshotter, NodeSnapshots
from flotilla.snapshots.native import NativeLayout
from flotilla.snapshots.overlay import OverlayLayout
from flotilla.snapshots.rootfs import Layer, apply_layers, chain_ids
from flotilla.snapshots.snapshotter import Kind
from flotilla.snapshots.testsuite.support import mounted
from flotilla.testkit import BuiltImage, Containerd, build_large, export_oci_tar
from flotilla.testkit import private_containerd as start_containerd
from flotilla.testkit.events import RecordingPublisher
from flotilla.testkit.layout import blob_path, read_json
from flotilla.testkit.oci import Descriptor as OciDescriptor
from flotilla.testkit.trees import Entry, Manifest, diff_manifests, manifest

pytestmark = [pytest.mark.root, pytest.mark.programs("containerd", "ctr")]

NAMESPACE = "unpack"
IMAGE_NAME = "flotilla/large:unpack"
IMAGE_SIZE = 16 << 20  # every feature of the image, a few thousand files, seconds to unpack
LAYOUTS: Mapping[str, Layout] = {"overlayfs": OverlayLayout(), "native": NativeLayout()}
_COPY = 4 << 20


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """The large image at ``IMAGE_SIZE`` (cached in ``$FLOTILLA_TESTKIT_CACHE`` if set)."""
    configured = os.environ.get("FLOTILLA_TESTKIT_CACHE")
    cache = Path(configured) if configured else tmp_path_factory.mktemp("images")
    return build_large(cache, size=IMAGE_SIZE)


@pytest.mark.parametrize("snapshotter", list(LAYOUTS))
async def test_unpacks_the_tree_containerd_unpacks(
    large: BuiltImage, snapshotter: str, tmp_path: Path
) -> None:
    layers = image_layers(large)
    expected_chains = set(chain_ids([layer.diff_id for layer in layers]))
    their_chains, theirs = await containerd_tree(large, snapshotter, tmp_path)
    our_chains, ours = await flotilla_tree(large, layers, LAYOUTS[snapshotter], tmp_path)

    differences = diff_manifests(theirs, ours, "containerd", "flotilla")
    assert not differences, "\n".join([f"{len(differences)} differences:", *differences[:200]])
    assert our_chains == their_chains == expected_chains
    for tree in (theirs, ours):
        assert "/data/doomed.txt" not in tree
        assert children(tree, "/data/opaque") == ["/data/opaque/fresh.txt"]
        assert tree["/data/big/random-1.link"].link_group == "/data/big/random-1.bin"
        link = tree["/data/big/current"]
        assert (link.kind, link.target) == ("symlink", "random-1.bin")
        assert tree["/usr/local/bin/hello"].mode == 0o755


def children(tree: Manifest, directory: str) -> list[str]:
    """The paths right under ``directory`` in ``tree``."""
    prefix = directory.rstrip("/") + "/"
    return sorted(p for p in tree if p.startswith(prefix) and "/" not in p[len(prefix) :])


def image_layers(image: BuiltImage) -> list[Layer]:
    """The image's layers, bottom first, with the diffIDs of its config."""
    image_manifest = read_json(image.layout, image.descriptor)
    config = read_json(image.layout, OciDescriptor.from_json(image_manifest["config"]))
    blobs = image_manifest["layers"]
    diff_ids = config["rootfs"]["diff_ids"]
    assert len(blobs) == len(diff_ids) == 8
    return [
        Layer(Descriptor(media_type=b["mediaType"], digest=b["digest"], size=b["size"]), diff_id)
        for b, diff_id in zip(blobs, diff_ids, strict=True)
    ]


async def containerd_tree(
    image: BuiltImage, snapshotter: str, tmp_path: Path
) -> tuple[set[str], dict[str, Entry]]:
    """Import and unpack the image into a private containerd; its snapshots and tree."""
    tarball = await export_oci_tar(image, tmp_path / "image.tar", image_name=IMAGE_NAME)
    target = tmp_path / "containerd-rootfs"
    target.mkdir()
    chosen = ("--snapshotter", snapshotter)
    async with start_containerd() as ctd:
        await ctd.ctr("images", "import", *chosen, str(tarball), namespace=NAMESPACE)
        await ctd.ctr("images", "mount", *chosen, IMAGE_NAME, str(target), namespace=NAMESPACE)
        try:
            tree = await asyncio.to_thread(manifest, target)
        finally:
            await ctd.ctr("images", "unmount", *chosen, "--rm", str(target), namespace=NAMESPACE)
        chains = await committed_snapshots(ctd, snapshotter)
        # Leave little for private_containerd's exit to delete: it does so on the event loop.
        await ctd.ctr("images", "rm", "--sync", IMAGE_NAME, namespace=NAMESPACE)
        return chains, tree


async def committed_snapshots(ctd: Containerd, snapshotter: str) -> set[str]:
    """The names of containerd's committed snapshots (``ctr snapshots ls``)."""
    listed = await ctd.ctr("snapshots", "--snapshotter", snapshotter, "ls", namespace=NAMESPACE)
    rows = [line.split() for line in listed.splitlines()[1:] if line.strip()]
    return {row[0] for row in rows if row[-1] == "Committed"}


async def flotilla_tree(
    image: BuiltImage, layers: list[Layer], layout: Layout, tmp_path: Path
) -> tuple[set[str], dict[str, Entry]]:
    """Unpack the image's blobs from a content store into snapshots; their names and tree."""
    publisher = RecordingPublisher()
    async with await LocalStore.open(tmp_path / "content", publisher) as store:
        for layer in layers:
            await commit_blob(store, blob_path(image.layout, layer.blob.digest), layer.blob)
        node = NodeSnapshots(tmp_path / "snapshots" / "metadata.db", publisher)
        await node.open()
        try:
            root = tmp_path / "snapshots" / layout.name
            snapshotter = await LocalSnapshotter.open(node, root, layout)
            applier = LayerApplier(store.blob_path)
            top = await apply_layers(snapshotter, applier, NAMESPACE, layers)
            async with mounted(await snapshotter.view(NAMESPACE, "compare", top)) as rootfs:
                tree = await asyncio.to_thread(manifest, rootfs)
            names = {
                info.name
                async for info in snapshotter.walk(NAMESPACE)
                if info.kind is Kind.COMMITTED
            }
            return names, tree
        finally:
            await node.close()


async def commit_blob(store: LocalStore, path: Path, blob: Descriptor) -> None:
    """Copy the file at ``path`` into ``store`` as the blob ``blob``."""
    writer = await store.writer(NAMESPACE, f"import-{blob.digest}", blob.size, blob.digest)
    async with writer:
        with path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, _COPY):
                await writer.write(chunk)
        await writer.commit(blob.size, blob.digest)


def test_tree_comparison_names_every_difference(tmp_path: Path) -> None:
    left, right = tmp_path / "left", tmp_path / "right"
    for root in (left, right):
        (root / "dir").mkdir(parents=True)
        (root / "dir" / "file").write_bytes(b"same")
        os.link(root / "dir" / "file", root / "dir" / "link")
        os.symlink("file", root / "dir" / "sym")
        os.mknod(root / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(right / "dir", 0o700)
    os.chown(right / "dir" / "file", 1000, 1000)
    (right / "dir" / "link").unlink()
    (right / "dir" / "link").write_bytes(b"diff")
    os.setxattr(right / "dir" / "file", "trusted.flotilla", b"x")
    os.utime(right / "dir" / "file", ns=(0, 0))
    (right / "dir" / "sym").unlink()
    os.symlink("elsewhere", right / "dir" / "sym")
    (right / "dev").unlink()
    os.mknod(right / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    (right / "extra").write_bytes(b"")

    lines = diff_manifests(manifest(left), manifest(right), "L", "R")

    assert diff_manifests(manifest(left), manifest(left)) == []
    assert "/dev: rdev L (1, 3), R (1, 5)" in lines
    assert "/dir: mode L 0755, R 0700" in lines
    assert "/dir/file: uid L 0, R 1000" in lines
    assert "/dir/file: xattrs L {}, R {trusted.flotilla=b'x'}" in lines
    assert "/dir/file: link_group L '/dir/file', R ''" in lines
    assert "/dir/link: sha256 L" in "\n".join(lines)
    assert "/dir/sym: target L 'file', R 'elsewhere'" in lines
    assert "/extra: only in R (file)" in lines
    assert any(line.startswith("/dir/file: mtime_ns L ") for line in lines)
