"""A misbehaving registry: a reverse proxy in front of a real one, with faults to switch on.

Usage::

    async with local_registry() as reg, faulty_registry(reg.url) as fr:
        await push_image(image, reg.host)
        fr.drop_after(layer_digest, 1000)   # the first GET of that blob breaks after 1000 bytes
        ... pull from fr.host ...
        assert fr.ranges[layer_digest] == [None, "bytes=1000-"]

Everything it does not fault is forwarded as it came (``Host`` too, so the registry's upload
``Location`` URLs point back at the proxy) and the answers are streamed back. Faults apply to
blob bodies wherever they are served: by the proxy, or by its blob host after a redirect; and
to manifests fetched by that digest (or by a tag the registry resolves to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from flotilla.testkit.oci import CONFIG, MANIFEST
from flotilla.testkit.registry import basic_auth
from flotilla.testkit.token_server import serve

__all__ = ["FaultyRegistry", "SeenRequest", "faulty_registry"]

_CHUNK = 64 << 10
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[a-z0-9+._-]+:[a-zA-Z0-9=_-]+)$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
# Per-connection headers (RFC 9110 7.6.1) and the ones aiohttp sets from the body itself.
_HOP: Final = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length",
    )
)  # fmt: skip
_REALM = "flotilla-faulty"


class SeenRequest(NamedTuple):
    """A request as the proxy got it: method, path with query, headers (case-insensitive)."""

    method: str
    path: str
    headers: Mapping[str, str]


@dataclass
class _Drop:
    nbytes: int
    times: int


@dataclass
class _Failure:
    pattern: re.Pattern[str]
    method: str | None
    status: int
    times: int


@dataclass(frozen=True)
class _Ticket:
    """What a redirected blob URL stands for: the blob and how to fetch it upstream."""

    name: str
    digest: str
    authorization: str | None


@dataclass
class FaultyRegistry:
    """A running faulty proxy on 127.0.0.1 and its blob host; the knobs are its methods.

    Attributes:
        upstream: The registry behind it (``http://127.0.0.1:PORT``).
        credentials: Basic-auth user and password it logs in to ``upstream`` with, replacing
            what clients send (None: clients' ``Authorization`` goes through as it came).
        port: The proxy's port.
        blob_port: The blob host's port (blob GETs are redirected there).
        requests: Every request the proxy saw.
        ranges: Digest -> the ``Range`` header (None if none) of each GET that served the blob.
        redirected_headers: The headers of every request the blob host got.
    """

    upstream: str
    credentials: tuple[str, str] | None = None
    port: int = 0
    blob_port: int = 0
    requests: list[SeenRequest] = field(default_factory=list)
    ranges: dict[str, list[str | None]] = field(default_factory=dict)
    redirected_headers: list[Mapping[str, str]] = field(default_factory=list)
    _corrupt: set[str] = field(default_factory=set)
    _truncate: dict[str, int] = field(default_factory=dict)
    _drops: dict[str, _Drop] = field(default_factory=dict)
    _giants: dict[str, int] = field(default_factory=dict)
    _giant_digests: dict[int, str] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _redirect: bool = False
    _basic: tuple[str, str] | None = None
    _tickets: dict[str, _Ticket] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the proxy, the host part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        return f"http://{self.host}"

    @property
    def blob_host(self) -> str:
        """``127.0.0.1:PORT`` of the blob host redirected blob GETs go to."""
        return f"127.0.0.1:{self.blob_port}"

    # The knobs.

    # Blob faults also hit a manifest GET whose digest (in the path, or the registry's
    # Docker-Content-Digest for a tag) is the one given.

    def corrupt(self, digest: str) -> None:
        """Serve blob ``digest`` with its middle byte flipped (same length, wrong digest)."""
        self._corrupt.add(digest)

    def truncate(self, digest: str, size: int) -> None:
        """Serve only the first ``size`` bytes of blob ``digest``, then close the connection.

        The response still announces the blob's full ``Content-Length``.
        """
        self._truncate[digest] = size

    def drop_after(self, digest: str, nbytes: int, times: int = 1) -> None:
        """Close the connection after ``nbytes`` of blob ``digest``, on its next ``times`` GETs.

        Later GETs are served whole (``Range`` is forwarded, so resumes work).
        """
        self._drops[digest] = _Drop(nbytes, times)

    def giant_manifest(self, reference: str, size: int) -> None:
        """Answer manifest GET and HEAD for ``reference`` (any repository) with ``size`` bytes.

        The body is a valid-looking OCI manifest padded with an annotation to exactly ``size``
        bytes, with the OCI manifest Content-Type and its true digest.
        """
        _giant_parts(size)  # too small a size fails here, in the test, not in the handler
        self._giants[reference] = size

    def redirect_blobs(self, on: bool = True) -> None:
        """Answer blob GETs with a 307 to the blob host (``blob_host``), or stop doing so."""
        self._redirect = on

    def require_basic(self, user: str | None, password: str = "") -> None:
        """Make the proxy itself demand basic auth as ``user`` (None: stop demanding it)."""
        self._basic = None if user is None else (user, password)

    def fail(
        self, path: str, status: int = 500, *, method: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests whose path matches ``path`` with ``status``.

        Args:
            path: A regular expression searched for in the request path (with its query).
            status: The HTTP status to answer with (the body is a registry error document).
            method: Only requests with this method (None: any method).
            times: How many requests to fail before forwarding again.
        """
        self._failures.append(_Failure(re.compile(path), method, status, times))

    def reset(self) -> None:
        """Switch every fault off (the records stay)."""
        self._failures.clear()
        self._corrupt.clear()
        self._truncate.clear()
        self._drops.clear()
        self._giants.clear()
        self._redirect = False
        self._basic = None

    # The proxy.

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every request to the proxy."""
        self.requests.append(SeenRequest(request.method, request.path_qs, _copy(request.headers)))
        if not self._admits(request):
            return _unauthorized()
        failure = self._failure(request)
        if failure is not None:
            return _error(failure)
        if request.method in ("GET", "HEAD"):
            blob = _BLOB.match(request.path)
            if blob and request.method == "GET" and self._redirect:
                return self._redirect_blob(request, blob["name"], blob["digest"])
            manifest = _MANIFEST.match(request.path)
            if manifest and manifest["reference"] in self._giants:
                return await self._giant(request, self._giants[manifest["reference"]])
            if blob or manifest:
                auth = self._authorization(request)
                digest = blob["digest"] if blob else None
                return await self._fetch(request, request.path_qs, digest, auth)
        return await self._forward(request)

    def _failure(self, request: web.Request) -> int | None:
        """The status to fail ``request`` with, if a ``fail()`` matches it (using one up)."""
        for failure in self._failures:
            if failure.times <= 0 or failure.method not in (None, request.method):
                continue
            if failure.pattern.search(request.path_qs):
                failure.times -= 1
                return failure.status
        return None

    def _admits(self, request: web.Request) -> bool:
        """Whether the proxy's own basic auth, if on, lets ``request`` in."""
        if self._basic is None:
            return True
        return request.headers.get("Authorization") == basic_auth(*self._basic)

    def _authorization(self, request: web.Request) -> str | None:
        """What goes upstream as ``Authorization``."""
        if self.credentials is not None:
            return basic_auth(*self.credentials)
        if self._basic is not None:
            return None  # the client's credentials were for the proxy
        return request.headers.get("Authorization")

    def _upstream_headers(
        self, request: web.Request, authorization: str | None
    ) -> CIMultiDict[str]:
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
        headers.popall("Authorization", None)
        if authorization is not None:
            headers["Authorization"] = authorization
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)  # no chunking upstream
        return headers

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = self._upstream_headers(request, self._authorization(request))
        body = _stream(request) if request.body_exists else None
        async with self._http.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            return await _relay(request, upstream)

    async def _fetch(
        self, request: web.Request, path: str, blob: str | None, authorization: str | None
    ) -> web.StreamResponse:
        """Serve a blob (digest ``blob``) or a manifest from upstream ``path``, faults applied."""
        headers = self._upstream_headers(request, authorization)
        if request.match_info.get("key"):
            headers.popall("Host", None)  # the blob host fetches for itself
        if request.method == "GET" and blob is not None:
            self.ranges.setdefault(blob, []).append(request.headers.get("Range"))
        async with self._http.request(
            request.method, self.upstream + path, headers=headers, allow_redirects=False
        ) as upstream:
            digest = blob if blob is not None else upstream.headers.get("Docker-Content-Digest")
            if request.method != "GET" or upstream.status not in (200, 206):
                return await _relay(request, upstream)
            if digest is None or (blob is None and not self._faulted(digest)):
                return await _relay(request, upstream)
            return await self._faulty_body(request, upstream, digest)

    def _faulted(self, digest: str) -> bool:
        return digest in self._corrupt or digest in self._truncate or digest in self._drops

    async def _faulty_body(
        self, request: web.Request, upstream: aiohttp.ClientResponse, digest: str
    ) -> web.StreamResponse:
        start, total = _span(upstream)
        cut = self._truncate.get(digest)
        drop = self._drops.get(digest)
        if drop is not None and drop.times > 0:
            drop.times -= 1
            cut = drop.nbytes if cut is None else min(cut, drop.nbytes)
        flip = total // 2 - start if digest in self._corrupt else -1
        resp = _response_like(upstream)
        with contextlib.suppress(ConnectionError):  # the client went away: so be it
            await resp.prepare(request)
            sent = 0
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                if sent <= flip < sent + len(chunk):
                    i = flip - sent
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                if cut is not None and sent + len(chunk) >= cut:
                    await resp.write(chunk[: cut - sent])
                    _hang_up(request)
                    return resp
                await resp.write(chunk)
                sent += len(chunk)
            await resp.write_eof()
        return resp

    def _redirect_blob(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        key = secrets.token_urlsafe(12)
        self._tickets[key] = _Ticket(name, digest, self._authorization(request))
        location = f"http://{self.blob_host}/blobs/{key}/{digest}?signature={secrets.token_hex(8)}"
        return web.Response(status=307, headers={"Location": location})

    async def handle_blob_host(self, request: web.Request) -> web.StreamResponse:
        """Every request to the blob host: ``/blobs/<ticket>/<digest>``."""
        self.redirected_headers.append(_copy(request.headers))
        ticket = self._tickets.get(request.match_info["key"])
        if ticket is None or request.method not in ("GET", "HEAD"):
            return web.Response(status=404, text="no such blob URL\n")
        path = f"/v2/{ticket.name}/blobs/{ticket.digest}"
        return await self._fetch(request, path, ticket.digest, ticket.authorization)

    async def _giant(self, request: web.Request, size: int) -> web.StreamResponse:
        digest = self._giant_digests.get(size)
        if digest is None:
            digest = await asyncio.to_thread(_giant_digest, size)
            self._giant_digests[size] = digest
        resp = web.StreamResponse(
            headers={"Content-Type": MANIFEST, "Docker-Content-Digest": digest}
        )
        resp.content_length = size
        with contextlib.suppress(ConnectionError):  # clients are expected to give up early
            await resp.prepare(request)
            if request.method == "GET":
                for part in _giant_chunks(size):
                    await resp.write(part)
            await resp.write_eof()
        return resp

    @property
    def _http(self) -> aiohttp.ClientSession:
        assert self._session is not None, "the proxy is not running"
        return self._session


def _copy(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict(headers)


def _error(status: int) -> web.Response:
    """A registry error document with ``status``, as distribution answers."""
    error = {"code": "UNKNOWN", "message": f"injected failure (HTTP {status})"}
    return web.json_response({"errors": [error]}, status=status)


def _unauthorized() -> web.Response:
    return web.json_response(
        {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
        status=401,
        headers={"WWW-Authenticate": f'Basic realm="{_REALM}"'},
    )


async def _stream(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(_CHUNK):
        yield chunk


def _response_like(upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    """A response with ``upstream``'s status and end-to-end headers, same Content-Length."""
    headers = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP)
    resp = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
    length = upstream.headers.get("Content-Length")
    if length is not None:
        resp.content_length = int(length)
    return resp


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    resp = _response_like(upstream)
    with contextlib.suppress(ConnectionError):  # the client went away: so be it
        await resp.prepare(request)
        if request.method != "HEAD":
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await resp.write(chunk)
        await resp.write_eof()
    return resp


def _span(upstream: aiohttp.ClientResponse) -> tuple[int, int]:
    """(offset of the body's first byte in the blob, the blob's size)."""
    match = _CONTENT_RANGE.fullmatch(upstream.headers.get("Content-Range", ""))
    if upstream.status == 206 and match:
        return int(match[1]), int(match[3])
    return 0, upstream.content_length or 0


def _hang_up(request: web.Request) -> None:
    """Close the client's connection now (what was written is still delivered first)."""
    if request.transport is not None:
        request.transport.close()


def _giant_parts(size: int) -> tuple[bytes, int, bytes]:
    """(prefix, padding length, suffix) of a ``size``-byte manifest."""
    config = f'{{"mediaType":"{CONFIG}","digest":"sha256:{"0" * 64}","size":2}}'
    prefix = (
        f'{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{config},"layers":[],'
        '"annotations":{"org.flotilla.padding":"'
    ).encode()
    suffix = b'"}}'
    padding = size - len(prefix) - len(suffix)
    if padding < 0:
        raise ValueError(f"giant manifest: {size} bytes is too small (at least {size - padding})")
    return prefix, padding, suffix


def _giant_chunks(size: int) -> list[bytes]:
    prefix, padding, suffix = _giant_parts(size)
    parts = [prefix]
    full, rest = divmod(padding, _CHUNK)
    block = b"a" * _CHUNK
    parts.extend([block] * full)
    parts.append(b"a" * rest)
    parts.append(suffix)
    return parts


def _giant_digest(size: int) -> str:
    h = hashlib.sha256()
    for part in _giant_chunks(size):
        h.update(part)
    return f"sha256:{h.hexdigest()}"


@asynccontextmanager
async def faulty_registry(
    upstream: str, *, credentials: tuple[str, str] | None = None
) -> AsyncIterator[FaultyRegistry]:
    """Run a faulty proxy to ``upstream`` and its blob host, each on a free 127.0.0.1 port.

    Args:
        upstream: The registry to forward to, ``http://127.0.0.1:PORT``.
        credentials: Basic-auth user and password to log in to ``upstream`` with.
    """
    fr = FaultyRegistry(upstream.rstrip("/"), credentials)
    proxy = web.Application(client_max_size=0)
    proxy.router.add_route("*", "/{path:.*}", fr.handle)
    blobs = web.Application()
    blobs.router.add_route("*", "/blobs/{key}/{digest}", fr.handle_blob_host)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with (
        aiohttp.ClientSession(auto_decompress=False, timeout=timeout) as session,
        serve(proxy) as port,
        serve(blobs) as blob_port,
    ):
        fr._session, fr.port, fr.blob_port = session, port, blob_port
        yield fr
