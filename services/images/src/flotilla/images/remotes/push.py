"""Pushing to a repository, as containerd's pusher does it.

Blobs (monolithic or chunked), mounts and manifests go to the first endpoint with the ``push``
capability. A blob upload starts with ``POST /blobs/uploads/``; the registry's ``Location``
names the session, which takes the whole blob in one ``PUT ?digest=`` or a series of
``PATCH`` es closed by an empty ``PUT``. A failed upload is cancelled (``DELETE``) so that the
registry can drop it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Final

import aiohttp
import yarl

from flotilla.common import digests, errdefs
from flotilla.images import oci
from flotilla.images.remotes.auth import repository_scope
from flotilla.images.remotes.base import RepoContext
from flotilla.images.remotes.hosts import RegistryHost
from flotilla.images.remotes.transport import Body, Call

__all__ = ["blob_exists", "mount_blob", "push_blob", "push_manifest"]

_OCTETS: Final = "application/octet-stream"
_DIGEST_HEADER: Final = "Docker-Content-Digest"
Chunks = Callable[[], AsyncIterator[bytes]]


def _call(
    ctx: RepoContext,
    endpoint: RegistryHost,
    method: str,
    url: yarl.URL,
    what: str,
    *,
    headers: dict[str, str] | None = None,
    body: Body | None = None,
    extra_scopes: tuple[str, ...] = (),
) -> Call:
    scopes = (repository_scope(ctx.path, push=True), *extra_scopes)
    return Call(endpoint, method, url, what, scopes, headers or {}, body, retry=True)


async def blob_exists(ctx: RepoContext, desc: oci.Descriptor) -> bool:
    """Whether the push endpoint already has ``desc`` in this repository (``HEAD``).

    Raises:
        Unauthenticated, PermissionDenied, Unavailable: as the registry answered.
    """
    endpoint = ctx.with_capability("push")[0]
    what = ctx.what(desc)
    url = ctx.url(endpoint, ctx.kind(desc), desc.digest)
    headers = {"Accept": f"{desc.media_type}, */*"}
    resp = await ctx.open(_call(ctx, endpoint, "HEAD", url, what, headers=headers))
    if resp.status == 200:
        resp.release()
        return True
    if resp.status == 404:
        resp.release()
        return False
    raise await ctx.fail(resp, endpoint.host, what)


async def mount_blob(ctx: RepoContext, desc: oci.Descriptor, from_repository: str) -> bool:
    """Ask the registry to link ``desc`` from ``from_repository``; whether it did.

    A registry that cannot mount (the blob is not there, or the token does not cover the other
    repository) opens an upload instead, which is cancelled here: the answer is then False.

    Raises:
        Unauthenticated, PermissionDenied, Unavailable: as the registry answered.
    """
    endpoint = ctx.with_capability("push")[0]
    what = f"mount of blob {desc.digest} from {from_repository} into {ctx.path}"
    url = ctx.url(endpoint, "blobs", "uploads", "").update_query(
        mount=desc.digest, **{"from": from_repository}
    )
    call = _call(
        ctx, endpoint, "POST", url, what, extra_scopes=(repository_scope(from_repository),)
    )
    resp = await ctx.open(call)
    if resp.status == 201:
        resp.release()
        return True
    if resp.status == 202:
        location = _location(resp, endpoint.host, what)
        resp.release()
        await _cancel(ctx, endpoint, location, what)
        return False
    raise await ctx.fail(resp, endpoint.host, what)


async def push_blob(
    ctx: RepoContext, desc: oci.Descriptor, chunks: Chunks, *, chunk_size: int = 0
) -> None:
    """Upload ``desc``'s bytes, which ``chunks()`` yields (called again for a retry).

    Args:
        ctx: the repository.
        desc: what is uploaded; the registry checks the digest.
        chunks: makes a fresh iterator over the blob's bytes.
        chunk_size: 0 for one ``PUT``; else ``PATCH`` es of this many bytes.

    Raises:
        InvalidArgument: ``chunks`` yields another number of bytes than ``desc.size``, or the
            registry refuses the digest.
        Unauthenticated, PermissionDenied, Unavailable: as the registry answered.
    """
    oci.check_digest(desc.digest, f"registry {ctx.domain}: blob {ctx.path}")
    endpoint = ctx.with_capability("push")[0]
    what = f"blob {ctx.path}@{desc.digest}"
    start = _call(ctx, endpoint, "POST", ctx.url(endpoint, "blobs", "uploads", ""), what)
    resp = await ctx.open(start)
    if resp.status != 202:
        raise await ctx.fail(resp, endpoint.host, what)
    location = _location(resp, endpoint.host, what)
    resp.release()
    try:
        if chunk_size > 0:
            location = await _patch_all(ctx, endpoint, location, desc, chunks, chunk_size, what)
            body: Body = _empty
            headers = {"Content-Type": _OCTETS, "Content-Length": "0"}
        else:
            body = _sized(desc, chunks, ctx.domain, what)
            headers = {"Content-Type": _OCTETS, "Content-Length": str(desc.size)}
        done = location.update_query(digest=desc.digest)
        resp = await ctx.open(_call(ctx, endpoint, "PUT", done, what, headers=headers, body=body))
        if resp.status != 201:
            raise await ctx.fail(resp, endpoint.host, what)
        _check_digest_header(resp, endpoint.host, what, desc.digest)
        resp.release()
    except Exception:  # not on cancellation: that must not wait for the registry
        with contextlib.suppress(errdefs.ErrdefsError):
            await _cancel(ctx, endpoint, location, what)
        raise


async def _patch_all(
    ctx: RepoContext,
    endpoint: RegistryHost,
    location: yarl.URL,
    desc: oci.Descriptor,
    chunks: Chunks,
    chunk_size: int,
    what: str,
) -> yarl.URL:
    """Send the blob in ``chunk_size`` pieces; the session's last ``Location``."""
    offset = 0
    async for piece in _pieces(_sized(desc, chunks, ctx.domain, what)(), chunk_size):
        headers = {
            "Content-Type": _OCTETS,
            "Content-Length": str(len(piece)),
            "Content-Range": f"{offset}-{offset + len(piece) - 1}",
        }
        call = _call(ctx, endpoint, "PATCH", location, what, headers=headers, body=_bytes(piece))
        resp = await ctx.open(call)
        if resp.status != 202:
            raise await ctx.fail(resp, endpoint.host, what)
        location = _location(resp, endpoint.host, what)
        resp.release()
        offset += len(piece)
    return location


async def push_manifest(ctx: RepoContext, desc: oci.Descriptor, data: bytes, tag: str = "") -> None:
    """Put the manifest or index ``data`` under ``tag``, or under its digest.

    Raises:
        InvalidArgument: ``data`` is not what ``desc`` describes, or the registry refuses it
            (e.g. it names blobs the repository does not have).
        Unauthenticated, PermissionDenied, Unavailable: as the registry answered.
    """
    what = f"manifest {ctx.path}:{tag}" if tag else f"manifest {ctx.path}@{desc.digest}"
    oci.check_digest(desc.digest, f"registry {ctx.domain}: {what}")
    actual = digests.digest_of(data, desc.digest.partition(":")[0])
    if len(data) != desc.size or actual != desc.digest:
        raise errdefs.InvalidArgument(
            f"registry {ctx.domain}: {what}: data is {len(data)} bytes {actual}, "
            f"descriptor says {desc.size} bytes {desc.digest}"
        )
    endpoint = ctx.with_capability("push")[0]
    url = ctx.url(endpoint, "manifests", tag or desc.digest)
    headers = {"Content-Type": desc.media_type}
    resp = await ctx.open(
        _call(ctx, endpoint, "PUT", url, what, headers=headers, body=_bytes(data))
    )
    if resp.status != 201:
        raise await ctx.fail(resp, endpoint.host, what)
    _check_digest_header(resp, endpoint.host, what, desc.digest)
    resp.release()


def _location(resp: aiohttp.ClientResponse, host: str, what: str) -> yarl.URL:
    location = resp.headers.get("Location", "")
    if not location:
        resp.release()
        raise errdefs.InvalidArgument(f"registry {host}: {what}: upload answer has no Location")
    return resp.url.join(yarl.URL(location, encoded=True))


def _check_digest_header(resp: aiohttp.ClientResponse, host: str, what: str, digest: str) -> None:
    stored = resp.headers.get(_DIGEST_HEADER, "")
    if stored and stored != digest:
        resp.release()
        raise errdefs.DataLoss(f"registry {host}: {what}: stored as {stored}")


async def _cancel(ctx: RepoContext, endpoint: RegistryHost, location: yarl.URL, what: str) -> None:
    """Drop an upload session; registries that do not support it answer 404 or 405."""
    resp = await ctx.open(_call(ctx, endpoint, "DELETE", location, what))
    resp.release()


def _bytes(data: bytes) -> Body:
    return lambda: data


def _empty() -> bytes:
    return b""


def _sized(desc: oci.Descriptor, chunks: Chunks, domain: str, what: str) -> Chunks:
    """``chunks``, refusing a stream that is longer or shorter than ``desc.size``."""

    async def counted() -> AsyncIterator[bytes]:
        total = 0
        async for chunk in chunks():
            total += len(chunk)
            if total > desc.size:
                raise errdefs.InvalidArgument(
                    f"registry {domain}: {what}: more than the {desc.size} bytes described"
                )
            yield chunk
        if total != desc.size:
            raise errdefs.InvalidArgument(
                f"registry {domain}: {what}: {total} bytes, descriptor says {desc.size}"
            )

    return counted


async def _pieces(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """``chunks`` regrouped into pieces of ``size`` bytes (the last one may be shorter)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)
