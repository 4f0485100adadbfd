"""Pulling from a repository: resolve a tag or digest, read documents, stream blobs.

As containerd's resolver and fetcher: a manifest is resolved with ``HEAD`` (falling back to
``GET`` when the answer lacks a digest or a size, or the registry refuses ``HEAD``), and taken
from the first endpoint that has it. Manifests and indexes are read from ``/manifests/``,
everything else from ``/blobs/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

import aiohttp

from flotilla.common import digests, errdefs
from flotilla.images import oci
from flotilla.images.remotes.auth import repository_scope
from flotilla.images.remotes.base import RepoContext, read_limited
from flotilla.images.remotes.hosts import RegistryHost
from flotilla.images.remotes.transport import Call

__all__ = ["fetch_document", "open_blob", "resolve"]

_DIGEST_HEADER: Final = "Docker-Content-Digest"
_HASH_INLINE: Final = 256 << 10


def _is_digest(reference: str) -> bool:
    return ":" in reference  # a tag cannot hold a colon


def _media_type(resp: aiohttp.ClientResponse) -> str:
    return resp.headers.get("Content-Type", "").split(";", 1)[0].strip()


def _sniff_media_type(body: bytes) -> str:
    """A document's own ``mediaType`` field, for registries that send no Content-Type."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    value = doc.get("mediaType") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""


async def resolve(ctx: RepoContext, reference: str) -> oci.Descriptor:
    """The descriptor of the manifest or index ``reference`` (a tag or a digest) names.

    Endpoints with the ``resolve`` capability are asked for a tag; a digest can be checked, so
    ``pull`` endpoints are enough for it.

    Raises:
        NotFound: no endpoint has it.
        InvalidArgument: a malformed answer or a manifest over the size limit.
        Unauthenticated, PermissionDenied, Unavailable: as the registry answered.
    """
    digest = ""
    if _is_digest(reference):
        digest = oci.check_digest(reference, f"registry {ctx.domain}: {ctx.path}")
        what, capability = f"manifest {ctx.path}@{digest}", "pull"
    else:
        what, capability = f"manifest {ctx.path}:{reference}", "resolve"

    async def attempt(endpoint: RegistryHost, last: bool) -> oci.Descriptor:
        return await _resolve_at(ctx, endpoint, last, reference, digest, what)

    return await ctx.each(capability, attempt)


async def _resolve_at(
    ctx: RepoContext, endpoint: RegistryHost, last: bool, reference: str, digest: str, what: str
) -> oci.Descriptor:
    url = ctx.url(endpoint, "manifests", reference)
    call = Call(
        endpoint,
        "HEAD",
        url,
        what,
        scopes=(repository_scope(ctx.path),),
        headers={"Accept": oci.MANIFEST_ACCEPT},
        retry=last,
    )
    resp = await ctx.open(call)
    host = endpoint.host
    if resp.status == 405:  # registries without HEAD on manifests
        resp.release()
    elif resp.status != 200:
        raise await ctx.fail(resp, host, what)
    else:
        resp.release()
        media_type, size = _media_type(resp), resp.content_length
        header = resp.headers.get(_DIGEST_HEADER, "")
        known = digest or (header and oci.check_digest(header, f"registry {host}: {what}"))
        if known and size is not None and media_type:
            _check_size(host, what, size)
            return oci.Descriptor(media_type=media_type, digest=known, size=size)
    return await _resolve_by_get(ctx, call, digest)


async def _resolve_by_get(ctx: RepoContext, head: Call, digest: str) -> oci.Descriptor:
    host, what = head.endpoint.host, head.what
    resp = await ctx.open(dataclasses.replace(head, method="GET"))
    if resp.status != 200:
        raise await ctx.fail(resp, host, what)
    try:
        body = await read_limited(resp, host, what, oci.MAX_DOCUMENT)
    finally:
        resp.release()
    header = resp.headers.get(_DIGEST_HEADER, "")
    expected = digest or (header and oci.check_digest(header, f"registry {host}: {what}"))
    algorithm = expected.partition(":")[0] if expected else digests.CANONICAL
    actual = await _digest_of(body, algorithm)
    if expected and actual != expected:
        raise errdefs.DataLoss(f"registry {host}: {what}: content is {actual}, not {expected}")
    media_type = _media_type(resp)
    if not media_type or media_type == "application/octet-stream":
        media_type = _sniff_media_type(body) or media_type
    if not media_type:
        raise errdefs.InvalidArgument(f"registry {host}: {what}: answer has no media type")
    return oci.Descriptor(media_type=media_type, digest=actual, size=len(body))


async def _digest_of(data: bytes, algorithm: str) -> str:
    # Hashing a few MiB holds the event loop for milliseconds: do it in a thread.
    if len(data) < _HASH_INLINE:
        return digests.digest_of(data, algorithm)
    return await asyncio.to_thread(digests.digest_of, data, algorithm)


def _check_size(host: str, what: str, size: int) -> None:
    if size > oci.MAX_DOCUMENT:
        raise errdefs.InvalidArgument(
            f"registry {host}: {what}: {size} bytes, more than {oci.MAX_DOCUMENT}"
        )


async def fetch_document(ctx: RepoContext, desc: oci.Descriptor) -> bytes:
    """The whole of a small blob (manifest, index, config), its size and digest checked.

    Raises:
        InvalidArgument: it is larger than ``oci.MAX_DOCUMENT``, or its digest is malformed.
        DataLoss: the registry sent other bytes than ``desc`` describes (size or digest).
        NotFound, Unauthenticated, PermissionDenied, Unavailable: as the registry answered.
    """
    what = ctx.what(desc)
    oci.check_digest(desc.digest, f"registry {ctx.domain}: {what}")
    _check_size(ctx.domain, what, desc.size)
    algorithm = desc.digest.partition(":")[0]
    digests.hasher(algorithm)  # an unsupported algorithm fails before any request

    async def attempt(endpoint: RegistryHost, last: bool) -> bytes:
        resp = await _get(ctx, endpoint, last, desc, what, 0)
        host = endpoint.host
        try:
            body = await read_limited(resp, host, what, oci.MAX_DOCUMENT)
        finally:
            resp.release()
        if len(body) != desc.size:
            raise errdefs.DataLoss(
                f"registry {host}: {what}: {len(body)} bytes, expected {desc.size}"
            )
        actual = await _digest_of(body, algorithm)
        if actual != desc.digest:
            raise errdefs.DataLoss(f"registry {host}: {what}: content is {actual}")
        return body

    return await ctx.each("pull", attempt)


async def _get(
    ctx: RepoContext,
    endpoint: RegistryHost,
    last: bool,
    desc: oci.Descriptor,
    what: str,
    offset: int,
) -> aiohttp.ClientResponse:
    """An open 200 or 206 answer for ``desc`` from ``offset``; anything else raised."""
    headers = {"Accept": f"{desc.media_type}, */*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    call = Call(
        endpoint,
        "GET",
        ctx.url(endpoint, ctx.kind(desc), desc.digest),
        what,
        scopes=(repository_scope(ctx.path),),
        headers=headers,
        retry=last,
    )
    resp = await ctx.open(call)
    if resp.status == 200 or (resp.status == 206 and offset):
        if resp.status == 206:
            _check_range(resp, endpoint.host, what, offset)
        return resp
    raise await ctx.fail(resp, endpoint.host, what)


def _check_range(resp: aiohttp.ClientResponse, host: str, what: str, offset: int) -> None:
    answered = resp.headers.get("Content-Range", "")
    if not answered.startswith(f"bytes {offset}-"):
        resp.release()
        raise errdefs.InvalidArgument(
            f"registry {host}: {what}: asked from byte {offset}, got range {answered!r}"
        )


@contextlib.asynccontextmanager
async def open_blob(
    ctx: RepoContext, desc: oci.Descriptor, offset: int = 0
) -> AsyncIterator[AsyncIterator[bytes]]:
    """``desc``'s bytes from ``offset``, as chunks; the digest is the caller's to check.

    Raises:
        Unavailable: the connection broke or the body ended early (resume from what arrived).
        DataLoss: the registry sent more bytes than ``desc.size``.
        OutOfRange: ``offset`` is past the end.
        NotFound, Unauthenticated, PermissionDenied: as the registry answered.
    """
    what = ctx.what(desc)
    oci.check_digest(desc.digest, f"registry {ctx.domain}: {what}")
    if offset < 0 or offset > desc.size:
        raise errdefs.OutOfRange(
            f"registry {ctx.domain}: {what}: offset {offset} outside 0..{desc.size}"
        )
    if offset == desc.size:
        yield _nothing()
        return
    holder: list[RegistryHost] = []

    async def attempt(endpoint: RegistryHost, last: bool) -> aiohttp.ClientResponse:
        resp = await _get(ctx, endpoint, last, desc, what, offset)
        holder.append(endpoint)
        return resp

    resp = await ctx.each("pull", attempt)
    chunks = _chunks(resp, holder[-1].host, what, desc.size, offset)
    try:
        yield chunks
    finally:
        await chunks.aclose()
        resp.release()


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


async def _chunks(
    resp: aiohttp.ClientResponse, host: str, what: str, size: int, offset: int
) -> AsyncGenerator[bytes, None]:
    # A 200 answer to a ranged request is the whole blob: skip to the offset ourselves.
    skip = offset if resp.status == 200 else 0
    expected, got = size - offset, 0
    try:
        async for chunk in resp.content.iter_any():
            if skip:
                dropped = min(skip, len(chunk))
                chunk, skip = chunk[dropped:], skip - dropped
                if not chunk:
                    continue
            got += len(chunk)
            if got > expected:
                raise errdefs.DataLoss(
                    f"registry {host}: {what}: more than the {size} bytes described"
                )
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as err:
        raise errdefs.Unavailable(
            f"registry {host}: {what}: connection lost after {offset + got} of {size} bytes"
        ) from err
    if got < expected:
        raise errdefs.Unavailable(
            f"registry {host}: {what}: answer ended after {offset + got} of {size} bytes"
        )
