"""Pushes from a node's content store to real registries, pulled back to compare."""

from __future__ import annotations

import pytest
from tests.images.conftest import NODE, NS, ImagesKit

from flotilla.common import errdefs
from flotilla.common.bus import Bus
from flotilla.content.helpers import read_blob
from flotilla.content.proxy import ContentProxy
from flotilla.images import oci
from flotilla.images.pull.progress import State
from flotilla.images.remotes.registry import Registries
from flotilla.testkit.faulty import FaultyRegistry
from flotilla.testkit.fixtures import AuthRegistry
from flotilla.testkit.publish import PublishedImages
from flotilla.testkit.registry import LocalRegistry

pytestmark = pytest.mark.root


async def blobs_of(content: ContentProxy, namespace: str, root: str) -> dict[str, bytes]:
    """Every blob of the image ``root`` in ``namespace``: documents with their bytes, layers
    with their digest (the store verified them)."""
    found: dict[str, bytes] = {}
    info = await content.info(namespace, root)
    data = await read_blob(content, namespace, root)
    found[root] = data
    for key, digest in sorted(info.labels.items()):
        if key.startswith("containerd.io/gc.ref.content."):
            if key.endswith(".config") or ".m." in key:
                found |= await blobs_of(content, namespace, digest)
            else:
                assert (await content.info(namespace, digest)).digest == digest
                found[digest] = b""
    return found


async def same_image(content: ContentProxy, first: str, second: str, root: str) -> None:
    assert await blobs_of(content, first, root) == await blobs_of(content, second, root)


def states(kit: ImagesKit) -> set[State]:
    return {p.state for p in kit.progress}


def layer_of(published: PublishedImages, name: str, i: int = 0) -> str:
    image = getattr(published.images, name)
    d = image.descriptor
    data = (image.layout / "blobs" / "sha256" / d.digest.removeprefix("sha256:")).read_bytes()
    desc = oci.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size)
    return oci.decode_manifest(data, desc).layers[i].digest


async def test_busybox_to_another_repository_and_another_registry(
    pushes: ImagesKit,
    published_images: PublishedImages,
    second_registry: LocalRegistry,
    bus: Bus,
) -> None:
    ref = published_images.ref("busybox")
    pulled = await pushes.pull(ref, unpack=True)
    root = pulled.image.target.digest
    content = ContentProxy(bus, node=NODE)

    copy = f"{published_images.host}/copies/busybox:v1"
    tagged = await pushes.push(ref, copy)
    assert tagged.digest == root
    assert State.DONE in states(pushes)
    await pushes.pull(copy, namespace="back", unpack=True)
    await same_image(content, NS, "back", root)

    pushes.progress.clear()
    other = f"{second_registry.host}/elsewhere/busybox:1"
    assert (await pushes.push(ref, other)).digest == root
    assert State.UPLOADING in states(pushes)
    assert await second_registry.manifest_digest("elsewhere/busybox", "1") == root
    await pushes.pull(other, namespace="back2")
    await same_image(content, NS, "back2", root)


async def test_the_whole_index_and_one_platform_of_it(
    pushes: ImagesKit, published_images: PublishedImages, second_registry: LocalRegistry, bus: Bus
) -> None:
    ref = published_images.ref("multiarch")
    target = (await pushes.pull(ref, all_platforms=True)).image.target
    root = target.digest
    index = oci.decode_index(
        await read_blob(ContentProxy(bus, node=NODE), NS, root),
        oci.Descriptor(media_type=target.media_type, digest=root, size=target.size),
    )
    by_arch = {m.platform.architecture: m for m in index.manifests if m.platform}
    assert set(by_arch) >= {"amd64", "arm64"}

    whole = f"{second_registry.host}/multi:all"
    assert (await pushes.push(ref, whole)).digest == root
    await pushes.pull(whole, namespace="back", all_platforms=True)
    await same_image(ContentProxy(bus, node=NODE), NS, "back", root)

    arm = f"{second_registry.host}/arm:v8"
    tagged = await pushes.push(ref, arm, platforms=("linux/arm64",))
    assert tagged.digest == by_arch["arm64"].digest
    assert await second_registry.manifest_digest("arm", "v8") == tagged.digest
    with pytest.raises(LookupError):  # the other platform's manifest was not pushed
        await second_registry.manifest_digest("arm", by_arch["amd64"].digest)


async def test_the_whole_index_needs_every_manifest(
    pushes: ImagesKit, published_images: PublishedImages, second_registry: LocalRegistry
) -> None:
    ref = published_images.ref("multiarch")
    await pushes.pull(ref, platforms=("linux/arm64",))
    with pytest.raises(errdefs.NotFound, match=r"manifest sha256:\w+ \(linux/amd64\) is not in"):
        await pushes.push(ref, f"{second_registry.host}/partial:1")
    # One platform of it is there to push.
    await pushes.push(ref, f"{second_registry.host}/partial:1", platforms=("linux/arm64",))


async def test_a_second_push_only_asks(
    pushes: ImagesKit, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    ref = published_images.ref("large")
    await pushes.pull(ref)
    to = f"{faulty.host}/again/large:1"
    await pushes.push(ref, to)
    faulty.requests.clear()
    pushes.progress.clear()
    await pushes.push(ref, to)
    assert faulty.requests
    assert {r.method for r in faulty.requests} == {"HEAD"}
    assert states(pushes) <= {State.WAITING, State.EXISTS}


async def test_a_blob_from_another_repository_is_mounted(
    pushes: ImagesKit, published_images: PublishedImages, faulty: FaultyRegistry, bus: Bus
) -> None:
    source = published_images.ref("busybox").replace(published_images.host, faulty.host)
    pulled = await pushes.pull(source)
    faulty.requests.clear()
    to = f"{faulty.host}/mounted/busybox:1"
    await pushes.push(source, to)
    posts = [r.path for r in faulty.requests if r.method == "POST"]
    layer = layer_of(published_images, "busybox")
    assert any(f"mount={layer}" in p and "from=busybox" in p for p in posts)
    # Every blob was mounted (config and layer alike): no upload was started.
    assert all("mount=" in p for p in posts)
    assert not [r for r in faulty.requests if r.method in ("PATCH",)]
    await pushes.pull(to, namespace="back")
    await same_image(ContentProxy(bus, node=NODE), NS, "back", pulled.image.target.digest)


async def test_a_refused_mount_falls_back_to_an_upload(
    pushes: ImagesKit, published_images: PublishedImages, faulty: FaultyRegistry
) -> None:
    source = published_images.ref("busybox").replace(published_images.host, faulty.host)
    await pushes.pull(source)
    faulty.fail("mount=", 401, method="POST", times=10)
    faulty.requests.clear()
    await pushes.push(source, f"{faulty.host}/refused/busybox:1")
    posts = [r.path for r in faulty.requests if r.method == "POST"]
    assert any("mount=" in p for p in posts)
    assert any("mount=" not in p for p in posts)
    assert [r for r in faulty.requests if r.method == "PUT" and "digest=" in r.path]


async def test_chunked_uploads(
    pushes: ImagesKit, published_images: PublishedImages, faulty: FaultyRegistry, bus: Bus
) -> None:
    ref = published_images.ref("busybox")  # pulled from the registry itself: no mount on the
    pulled = await pushes.pull(ref)  # proxy's address, whose labels name another registry
    faulty.requests.clear()
    to = f"{faulty.host}/chunked/busybox:1"
    await pushes.push(ref, to, chunk_size=64 << 10)
    patches = [r for r in faulty.requests if r.method == "PATCH"]
    layer = await ContentProxy(bus, node=NODE).info(NS, layer_of(published_images, "busybox"))
    assert len(patches) >= layer.size // (64 << 10)
    assert all(int(r.headers["Content-Length"]) <= 64 << 10 for r in patches)
    assert not [r for r in faulty.requests if "mount=" in r.path]
    await pushes.pull(to, namespace="back")
    await same_image(ContentProxy(bus, node=NODE), NS, "back", pulled.image.target.digest)


async def push_with_credentials(pushes: ImagesKit, reg: AuthRegistry, bus: Bus) -> None:
    client = Registries(credentials={reg.host: reg.credentials})
    try:
        ref = reg.ref("busybox")
        pulled = await pushes.pull(ref, registries=client)
        with pytest.raises(errdefs.Unauthenticated, match=reg.host):
            await pushes.push(ref, f"{reg.host}/nobody/busybox:1")  # no credentials
        to = f"{reg.host}/pushed/busybox:1"
        assert (await pushes.push(ref, to, registries=client)).digest == pulled.image.target.digest
        await pushes.pull(to, namespace="back", registries=client)
    finally:
        await client.close()
    await same_image(ContentProxy(bus, node=NODE), NS, "back", pulled.image.target.digest)


async def test_a_push_with_basic_auth(
    pushes: ImagesKit, auth_registry: AuthRegistry, bus: Bus
) -> None:
    await push_with_credentials(pushes, auth_registry, bus)


async def test_a_push_with_token_auth(
    pushes: ImagesKit, token_registry: AuthRegistry, bus: Bus
) -> None:
    await push_with_credentials(pushes, token_registry, bus)
    assert token_registry.token_server is not None
    scopes = {scope for r in token_registry.token_server.requests for scope in r.scopes}
    assert "repository:pushed/busybox:pull,push" in scopes
    assert "repository:busybox:pull" in scopes  # the mount's source


async def test_a_deleted_layer_is_not_found(
    pushes: ImagesKit, published_images: PublishedImages, second_registry: LocalRegistry, bus: Bus
) -> None:
    ref = published_images.ref("busybox")
    await pushes.pull(ref)
    layer = layer_of(published_images, "busybox")
    await ContentProxy(bus, node=NODE).delete(NS, layer)
    with pytest.raises(errdefs.NotFound, match=f"image {ref}: blob {layer} .* namespace {NS}"):
        await pushes.push(ref, f"{second_registry.host}/lost/busybox:1")
    with pytest.raises(LookupError):
        await second_registry.manifest_digest("lost/busybox", "1")
    # The registry it came from still has it: mounted from there, as containerd would.
    await pushes.push(ref, f"{published_images.host}/lost/busybox:1")
