"""What every operation on one repository shares: its endpoints, URLs and the mirror loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import aiohttp
import yarl

from flotilla.common import errdefs
from flotilla.images import oci
from flotilla.images.remotes.credentials import Credential, host_key
from flotilla.images.remotes.errors import status_error, transport_error
from flotilla.images.remotes.hosts import RegistryHost
from flotilla.images.remotes.transport import Call, Transport

__all__ = ["RepoContext", "read_limited"]

_T = TypeVar("_T")
_READ: Final = 1 << 16
_DOCKER_HUB: Final = ("docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class RepoContext:
    """One repository on one registry, over its endpoints (mirrors first).

    Attributes:
        transport: sends the requests.
        domain: the registry as the reference names it (``docker.io``).
        path: the repository (``library/busybox``).
        endpoints: ``hosts_for(domain)``.
        credential: the repository's own credential for its registry, if it was given one.
    """

    transport: Transport
    domain: str
    path: str
    endpoints: tuple[RegistryHost, ...]
    credential: Credential | None = None

    async def open(self, call: Call) -> aiohttp.ClientResponse:
        """``call`` sent with this repository's credential (see :meth:`Transport.open`)."""
        if self.credential is not None:
            call = dataclasses.replace(call, credential=(host_key(self.domain), self.credential))
        return await self.transport.open(call)

    def kind(self, desc: oci.Descriptor) -> str:
        """``manifests`` for manifests and indexes, else ``blobs`` (the URL component)."""
        is_document = oci.is_manifest(desc.media_type) or oci.is_index(desc.media_type)
        return "manifests" if is_document else "blobs"

    def what(self, desc: oci.Descriptor) -> str:
        """``manifest <path>@<digest>`` or ``blob <path>@<digest>``, for messages."""
        noun = "manifest" if self.kind(desc) == "manifests" else "blob"
        return f"{noun} {self.path}@{desc.digest}"

    def url(self, endpoint: RegistryHost, *parts: str) -> yarl.URL:
        """``<endpoint>/<path>/<parts...>``, with ``?ns=<domain>`` for a mirror (containerd)."""
        url = self.transport.url(endpoint, "/".join((self.path, *parts)))
        if self._is_mirror(endpoint):
            url = url.update_query(ns=self.domain)
        return url

    def _is_mirror(self, endpoint: RegistryHost) -> bool:
        if endpoint.host == self.domain:
            return False
        return (self.domain, endpoint.host) != _DOCKER_HUB

    def with_capability(self, capability: str) -> list[RegistryHost]:
        """The endpoints trusted with ``capability``, in order.

        Raises:
            NotFound: none is.
        """
        found = [e for e in self.endpoints if capability in e.capabilities]
        if not found:
            raise errdefs.NotFound(
                f"registry {self.domain}: no endpoint may {capability} {self.path}"
            )
        return found

    async def each(
        self, capability: str, attempt: Callable[[RegistryHost, bool], Awaitable[_T]]
    ) -> _T:
        """``attempt(endpoint, is_last)`` on each endpoint until one succeeds.

        When all fail, the last endpoint's error is raised (the registry itself comes after
        its mirrors), unless it could not be reached: then the most telling one, as containerd
        ranks them: a refusal or a malformed answer before a missing object, which comes
        before a dead connection.
        """
        endpoints = self.with_capability(capability)
        errors: list[errdefs.ErrdefsError] = []
        for i, endpoint in enumerate(endpoints):
            try:
                return await attempt(endpoint, i == len(endpoints) - 1)
            except errdefs.ErrdefsError as err:
                errors.append(err)
        if isinstance(errors[-1], errdefs.Unavailable):
            raise max(reversed(errors), key=_rank)  # among equals, the later endpoint's
        raise errors[-1]

    async def fail(
        self, resp: aiohttp.ClientResponse, host: str, what: str
    ) -> errdefs.ErrdefsError:
        """The error for ``resp`` (a non-success answer), its body read and released."""
        body = b""
        if resp.method != "HEAD":
            try:
                body = await resp.content.read(_READ)
            except (aiohttp.ClientError, TimeoutError):
                body = b""
        resp.release()
        return status_error(resp.status, host, what, body, resp.reason or "")


def _rank(err: errdefs.ErrdefsError) -> int:
    if isinstance(err, errdefs.Unavailable):
        return 1
    if isinstance(err, errdefs.NotFound):
        return 2
    return 3


async def read_limited(resp: aiohttp.ClientResponse, host: str, what: str, limit: int) -> bytes:
    """The whole body of ``resp``; InvalidArgument past ``limit`` bytes (by header or count).

    Raises:
        InvalidArgument: the body is larger than ``limit``.
        Unavailable: the connection broke.
    """
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise errdefs.InvalidArgument(
            f"registry {host}: {what}: {declared} bytes, more than {limit}"
        )
    parts: list[bytes] = []
    total = 0
    try:
        while chunk := await resp.content.read(_READ):
            total += len(chunk)
            if total > limit:
                raise errdefs.InvalidArgument(f"registry {host}: {what}: more than {limit} bytes")
            parts.append(chunk)
    except (aiohttp.ClientError, TimeoutError) as err:
        raise transport_error(host, what, err) from err
    return b"".join(parts)
