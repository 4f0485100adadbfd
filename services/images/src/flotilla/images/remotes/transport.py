"""One registry request: TLS and headers per host, authorization, redirects, HTTP fallback.

Redirects are followed here rather than by aiohttp so that each hop is authorized for its own
host only: a blob redirected to a storage host carries neither the registry's
``Authorization`` nor its ``hosts.toml`` headers. An endpoint marked ``http_fallback`` (a local
registry) is tried over TLS once; if its TLS handshake fails it is spoken to in plain HTTP from
then on.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import yarl

from flotilla.common import errdefs
from flotilla.images.remotes.auth import Authorizer
from flotilla.images.remotes.credentials import Credential, Credentials, host_key
from flotilla.images.remotes.errors import transport_error
from flotilla.images.remotes.hosts import RegistryHost
from flotilla.images.remotes.tls import TLSContexts

__all__ = ["Call", "Transport", "authority"]

_MAX_REDIRECTS: Final = 10
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_TRANSIENT: Final = frozenset({408, 429, 500, 502, 503, 504})
_RETRY_DELAY: Final = 0.5

Body = Callable[[], Any]
"""Makes a request body (bytes or an async iterator of bytes) afresh for each attempt."""


def authority(url: yarl.URL) -> str:
    """``host[:port]`` of ``url`` as registry host names are spelled (default port left out)."""
    return url.host_port_subcomponent or ""


@dataclass(frozen=True)
class Call:
    """One logical request to a registry endpoint.

    Attributes:
        endpoint: the endpoint it is for (TLS, headers and credentials are that host's).
        method: HTTP method.
        url: absolute URL; its scheme may change to http for an ``http_fallback`` endpoint.
        what: the object, for error messages (``manifest busybox:1``).
        scopes: token scopes the request needs.
        headers: request headers (kept across redirects).
        body: makes the request body, or None.
        follow: follow redirects (of GET and HEAD requests only).
        retry: retry once on a transient status (429, 5xx), as containerd does on a last host.
        credential: the repository's own credential for its registry, winning over the
            process's for requests to that registry's host (and never sent elsewhere).
    """

    endpoint: RegistryHost
    method: str
    url: yarl.URL
    what: str
    scopes: Sequence[str] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body | None = None
    follow: bool = True
    retry: bool = False
    credential: tuple[str, Credential] | None = None


class Transport:
    """Sends :class:`Call` s over one session, authorizing them with one :class:`Authorizer`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tls: TLSContexts,
        credentials: Credentials,
        user_agent: str,
    ) -> None:
        self._session = session
        self._tls = tls
        self._user_agent = user_agent
        self._plain: set[str] = set()  # http_fallback hosts found to speak plain HTTP
        self._known: dict[str, RegistryHost] = {}  # endpoints by host, for their TLS settings
        self._credentials = credentials
        self.auth = Authorizer(session, self.ssl_for, user_agent)

    async def ssl_for(self, url: yarl.URL) -> ssl.SSLContext | bool:
        """The TLS setting for ``url``: a known endpoint's own for its host, else the system's.

        Raises:
            InvalidArgument: the endpoint's CA or client certificate files cannot be loaded.
        """
        if url.scheme != "https":
            return False
        endpoint = self._known.get(authority(url))
        if endpoint is None:
            return await self._tls.default()
        return await self._tls.for_host(endpoint)

    def url(self, endpoint: RegistryHost, path: str) -> yarl.URL:
        """``endpoint``'s URL for ``path`` (below its API root), in the scheme it speaks."""
        scheme = endpoint.scheme
        if endpoint.http_fallback and endpoint.host in self._plain:
            scheme = "http"
        return yarl.URL(f"{scheme}://{endpoint.host}{endpoint.path}/{path}", encoded=True)

    async def open(self, call: Call) -> aiohttp.ClientResponse:
        """Send ``call``; the final response (any status but a redirect), to be released.

        Raises:
            Unavailable: the connection failed, or too many redirects.
            Unauthenticated: the registry refused the request after authorization.
        """
        self._known.setdefault(call.endpoint.host, call.endpoint)
        url = call.url
        for _ in range(_MAX_REDIRECTS + 1):
            resp = await self._authorized(call, url)
            location = resp.headers.get("Location", "")
            follow = call.follow and call.method in ("GET", "HEAD")
            if not (follow and resp.status in _REDIRECTS and location):
                return resp
            resp.release()
            url = url.join(yarl.URL(location, encoded=True))  # signed URLs stay as sent
            if url.scheme not in ("http", "https"):
                raise errdefs.InvalidArgument(
                    f"registry {call.endpoint.host}: {call.what}: redirected to a {url.scheme} URL"
                )
        raise errdefs.Unavailable(
            f"registry {call.endpoint.host}: {call.what}: more than {_MAX_REDIRECTS} redirects"
        )

    async def _authorized(self, call: Call, url: yarl.URL) -> aiohttp.ClientResponse:
        host = authority(url)
        cred = self._credential(call, host)
        sent = await self.auth.header(host, cred, call.scopes)
        resp = await self._retrying(call, url, sent)
        if resp.status != 401:
            return resp
        challenges = resp.headers.getall("WWW-Authenticate", [])
        resp.release()
        if not self.auth.challenged(host, cred, challenges, sent):
            raise self._refused(call, host, cred, sent)
        sent = await self.auth.header(host, cred, call.scopes)
        resp = await self._retrying(call, url, sent)
        if resp.status == 401:
            resp.release()
            raise self._refused(call, host, cred, sent)
        return resp

    def _credential(self, call: Call, host: str) -> Credential | None:
        """The credential for requests to ``host`` (looked up by the host's name).

        Raises:
            InvalidArgument: the Docker ``config.json`` is malformed.
        """
        if call.credential is not None and host_key(host) == call.credential[0]:
            return call.credential[1]
        return self._credentials.lookup(host)

    def _refused(
        self, call: Call, host: str, cred: Credential | None, sent: str | None
    ) -> errdefs.Unauthenticated:
        head = f"registry {host}: {call.what}"
        if cred is None:
            return errdefs.Unauthenticated(f"{head}: authentication required (no credentials)")
        if sent is None:
            return errdefs.Unauthenticated(f"{head}: no supported authentication scheme")
        return errdefs.Unauthenticated(f"{head}: credentials of {cred.username or host} refused")

    async def _retrying(
        self, call: Call, url: yarl.URL, authorization: str | None
    ) -> aiohttp.ClientResponse:
        resp = await self._send(call, url, authorization)
        if call.retry and resp.status in _TRANSIENT:
            resp.release()
            await asyncio.sleep(_RETRY_DELAY)
            resp = await self._send(call, url, authorization)
        return resp

    async def _send(
        self, call: Call, url: yarl.URL, authorization: str | None
    ) -> aiohttp.ClientResponse:
        own_host = authority(url) == call.endpoint.host
        headers: dict[str, str] = {"User-Agent": self._user_agent}
        if own_host:
            headers.update({k: ", ".join(v) for k, v in call.endpoint.headers.items()})
        headers.update(call.headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        fallback = own_host and call.endpoint.http_fallback and url.scheme == "https"
        if fallback and call.endpoint.host in self._plain:
            return await self._request(call, url.with_scheme("http"), headers)
        try:
            return await self._request(call, url, headers)
        except aiohttp.ClientConnectorCertificateError as err:
            # A TLS server whose certificate fails is not a plain HTTP one: no downgrade.
            raise transport_error(call.endpoint.host, call.what, err) from err
        except aiohttp.ClientSSLError as err:
            if not fallback:
                raise transport_error(call.endpoint.host, call.what, err) from err
        # The endpoint speaks plain HTTP (a local registry): use that from now on.
        self._plain.add(call.endpoint.host)
        return await self._request(call, url.with_scheme("http"), headers)

    async def _request(
        self, call: Call, url: yarl.URL, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        data = call.body() if call.body is not None else None
        try:
            return await self._session.request(
                call.method,
                url,
                headers=headers,
                data=data,
                ssl=await self.ssl_for(url),
                allow_redirects=False,
            )
        except aiohttp.ClientSSLError:
            raise
        except (aiohttp.ClientError, TimeoutError) as err:
            # aiohttp wraps what the body iterator raised (a refused stream) in a send error.
            own = _errdefs_cause(err)
            if own is not None:
                raise own from None
            raise transport_error(call.endpoint.host, call.what, err) from err


def _errdefs_cause(err: BaseException) -> errdefs.ErrdefsError | None:
    seen: BaseException | None = err
    for _ in range(8):  # a short chain; never loop on a cycle
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if seen is None or isinstance(seen, errdefs.ErrdefsError):
            return seen
    return None
