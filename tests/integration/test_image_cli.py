"""``flotilla image`` against real content, snapshots and images services, as ``ctr images``.

A local registry serves the test images; every command is a ``flotilla`` process on the
services' node.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flotilla.common.bus import Bus
from flotilla.content.proxy import ContentProxy
from flotilla.images import oci
from flotilla.testkit import fixtures as kit
from flotilla.testkit.publish import PublishedImages
from flotilla.testkit.services import node_env, node_services, run_cli

pytestmark = pytest.mark.root

image_cache = kit.image_cache
images = kit.images
registry = kit.registry
published_images = kit.published_images
auth_registry = kit.auth_registry

NODE = "cli-node"
PROGRESS = re.compile(
    r"[0-9a-f]{12} (waiting|downloading|uploading|verifying|extracting|exists|done|failed)"
    r" \d+/\d+"
)


@pytest.fixture
async def env(tmp_path: Path, nats_url: str, bus: Bus) -> AsyncIterator[dict[str, str]]:
    root = tmp_path / "root"
    names = ("content", "snapshots", "images")
    async with node_services(bus, nats_url, root, names, node=NODE):
        yield {**os.environ, **node_env(root, nats_url, NODE)}


async def flotilla(env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    code, out, err = await run_cli(env, "image", *args, stdin=stdin)
    return code, out.decode(), err


async def ok(env: dict[str, str], *args: str, stdin: bytes = b"") -> str:
    code, out, err = await flotilla(env, *args, stdin=stdin)
    assert (code, err) == (0, ""), f"{args}: {err}"
    return out


def listed(out: str) -> dict[str, list[str]]:
    """``ls`` rows by name (cells split on runs of spaces; a size is two cells)."""
    lines = out.splitlines()
    assert lines[0].split() == ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


async def image_size(bus: Bus, namespace: str, digest: str) -> int:
    """A single-manifest image's documents and layers, as ``ctr images ls`` sums them."""
    content = ContentProxy(bus, node=NODE)
    async with await content.reader_at(namespace, digest) as reader:
        data = b"".join([chunk async for chunk in reader.chunks()])
    desc = oci.Descriptor(media_type=oci.OCI_MANIFEST, digest=digest, size=len(data))
    manifest = oci.decode_manifest(data, desc)
    return len(data) + manifest.config.size + sum(layer.size for layer in manifest.layers)


def human(size: int) -> list[str]:
    value, units = float(size), ["B", "KiB", "MiB", "GiB"]
    while value >= 1024:
        value, units = value / 1024, units[1:]
    return [f"{value:.1f}", units[0]]


async def test_pull_prints_progress_then_the_image_is_listed(
    env: dict[str, str], published_images: PublishedImages, bus: Bus
) -> None:
    ref = published_images.ref("busybox")
    digest = published_images.images.busybox.digest
    out = (await ok(env, "pull", ref, "--plain-http")).splitlines()
    assert out[-1] == f"pulled {ref} {digest}"
    assert out[:-1], "no progress"
    assert all(PROGRESS.fullmatch(line) for line in out[:-1]), out
    layers = {line.split()[0] for line in out if " extracting " in line}
    assert len(layers) == 1
    assert {(layer, "done") for layer in layers} <= {tuple(line.split()[:2]) for line in out}
    assert len(out) == len(set(out)), "a state printed twice"

    rows = listed(await ok(env, "ls"))
    assert list(rows) == [ref]
    media_type, listed_digest, *size, platform, labels = rows[ref]
    assert (media_type, listed_digest) == (oci.OCI_MANIFEST, digest)
    assert size == human(await image_size(bus, "default", digest))
    assert platform.startswith("linux/")
    assert labels == f"flotilla.io/unpacked.{NODE}=overlayfs"
    assert await ok(env, "ls", "-q") == f"{ref}\n"
    assert await ok(env, "ls", "name==nothing") == "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
    assert await ok(env, "-n", "elsewhere", "ls", "-q") == ""


async def test_an_index_lists_its_platforms_and_this_node_s_size(
    env: dict[str, str], published_images: PublishedImages
) -> None:
    ref = published_images.ref("multiarch")
    await ok(env, "pull", ref, "--plain-http", "--no-unpack")
    media_type, digest, *size, platform, _ = listed(await ok(env, "ls"))[ref]
    assert (media_type, digest) == (oci.OCI_INDEX, published_images.images.multiarch.digest)
    assert platform == "linux/amd64,linux/arm64"
    assert len(size) == 2, "this node's manifest was pulled: its size is known"

    await ok(env, "-n", "all", "pull", ref, "--plain-http", "--no-unpack", "--all-platforms")
    assert listed(await ok(env, "-n", "all", "ls"))[ref][2:4] == size


async def test_tag_label_and_remove_with_sync(
    env: dict[str, str], published_images: PublishedImages, bus: Bus
) -> None:
    ref = published_images.ref("busybox")
    digest = published_images.images.busybox.digest
    await ok(env, "pull", ref, "--plain-http", "--no-unpack")
    assert await ok(env, "tag", ref, "example.com/a:1", "example.com/b:1") == (
        "example.com/a:1\nexample.com/b:1\n"
    )
    _, listing, _ = await run_cli(env, "images", "ls")  # the alias
    rows = listed(listing.decode())
    assert sorted(rows) == sorted([ref, "example.com/a:1", "example.com/b:1"])
    assert {row[1] for row in rows.values()} == {digest}

    code, out, err = await flotilla(env, "tag", ref, "example.com/a:1")
    assert (code, out) == (1, "")
    taken = 'image "example.com/a:1" already exists in namespace "default"'
    assert err == f"flotilla: AlreadyExists: {taken}\n"
    assert await ok(env, "tag", "--force", ref, "example.com/a:1") == "example.com/a:1\n"

    assert await ok(env, "label", "example.com/a:1", "app=web", "tier=1") == "app=web,tier=1\n"
    assert await ok(env, "label", "example.com/a:1", "tier=") == "app=web\n"
    assert listed(await ok(env, "ls", "labels.app==web")).keys() == {"example.com/a:1"}

    assert await ok(env, "rm", ref, "example.com/a:1") == f"{ref}\nexample.com/a:1\n"
    content = ContentProxy(bus, node=NODE)
    assert await ok(env, "rm", "--sync", "example.com/b:1") == "example.com/b:1\n"
    assert await ok(env, "ls", "-q") == ""
    assert [info.digest async for info in content.walk("default")] == []


async def test_export_then_import_into_another_namespace(
    env: dict[str, str],
    published_images: PublishedImages,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = published_images.ref("busybox")
    digest = published_images.images.busybox.digest
    await ok(env, "pull", ref, "--plain-http")
    monkeypatch.chdir(tmp_path)  # relative paths are the command's, not the service's
    assert await ok(env, "export", "out.tar", ref) == ""
    with tarfile.open(tmp_path / "out.tar") as tar:
        assert {"oci-layout", "index.json", "manifest.json"} <= set(tar.getnames())

    assert await ok(env, "-n", "other", "import", "out.tar") == f"{ref} {digest}\n"
    rows = listed(await ok(env, "-n", "other", "ls"))
    assert rows[ref][1] == digest
    assert rows[ref][2] != "-", "imported and unpacked, its blobs are all there"


async def test_push_to_another_repository_and_pull_it_back(
    env: dict[str, str], published_images: PublishedImages
) -> None:
    ref = published_images.ref("busybox")
    digest = published_images.images.busybox.digest
    await ok(env, "pull", ref, "--plain-http", "--no-unpack")
    copy = f"{published_images.host}/copies/busybox:v1"
    out = (await ok(env, "push", ref, copy, "--plain-http", "--chunk-size", "4096")).splitlines()
    assert out[-1] == f"pushed {copy} {digest}"
    assert all(PROGRESS.fullmatch(line) for line in out[:-1]), out
    assert any(" done " in line or " exists " in line for line in out[:-1])

    back = await ok(env, "-n", "back", "pull", copy, "--plain-http")
    assert back.splitlines()[-1] == f"pulled {copy} {digest}"


async def test_credentials_on_the_command_line_or_stdin(
    env: dict[str, str], auth_registry: kit.AuthRegistry
) -> None:
    ref = auth_registry.ref("busybox")
    user, secret = auth_registry.credentials
    out = await ok(env, "pull", ref, "--plain-http", "--no-unpack", "--user", f"{user}:{secret}")
    assert out.splitlines()[-1].startswith(f"pulled {ref} ")
    out = await ok(
        env, "-n", "b", "pull", ref, "--plain-http", "--user", user, stdin=f"{secret}\n".encode()
    )
    assert out.splitlines()[-1].startswith(f"pulled {ref} ")
    code, out, err = await flotilla(env, "-n", "c", "pull", ref, "--plain-http")
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith("flotilla: ")


@pytest.mark.parametrize(
    "args",
    [
        ("push", "nope", "--plain-http"),
        ("rm", "nope"),
        ("tag", "nope", "example.com/x:1"),
        ("label", "nope", "a=b"),
    ],
)
async def test_an_unknown_image_is_one_line(env: dict[str, str], args: tuple[str, ...]) -> None:
    error = 'flotilla: NotFound: image "nope" not found in namespace "default"\n'
    assert await flotilla(env, *args) == (1, "", error)


async def test_other_errors_are_one_line(
    env: dict[str, str], published_images: PublishedImages, tmp_path: Path
) -> None:
    missing = published_images.ref("busybox").replace("busybox", "nothing-here")
    for args in (
        ("pull", missing, "--plain-http"),
        ("pull", "UPPER/case", "--plain-http"),
        ("pull", missing, "--platform", "linux/"),
        ("import", str(tmp_path / "none.tar")),
        ("export", str(tmp_path / "out.tar"), "nope"),
        ("label", "x", "novalue"),
    ):
        code, out, err = await flotilla(env, *args)
        assert (code, out) == (1, ""), args
        assert re.fullmatch(r"flotilla: [A-Za-z]+: [^\n]+\n", err), (args, err)
