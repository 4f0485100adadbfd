"""The registry client of the images service: containerd's ``remotes/docker`` over aiohttp.

One :class:`Registries` per process holds the HTTP connection pool, TLS contexts, credentials
and cached tokens; :meth:`Registries.repository` hands out a :class:`Repository` to pull from
and push to, over the endpoints ``hosts.toml`` configures for its registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Final

import aiohttp

from flotilla.images import oci
from flotilla.images.reference import Reference
from flotilla.images.remotes import fetch, push
from flotilla.images.remotes.base import RepoContext
from flotilla.images.remotes.credentials import Credential, Credentials
from flotilla.images.remotes.hosts import RegistryHost, hosts_for
from flotilla.images.remotes.tls import TLSContexts
from flotilla.images.remotes.transport import Transport

__all__ = ["Registries", "Repository"]

_READ_TIMEOUT: Final = 300.0  # a registry silent this long mid-answer is gone
_CONNECTIONS: Final = 64


class Registries:
    """Registry access for one process: a connection pool and authorization caches.

    Args:
        hosts_dir: containerd's ``certs.d`` directory of ``hosts.toml`` files, if any.
        docker_config: a Docker ``config.json`` to take credentials from.
        credentials: host -> (user, secret); wins over ``docker_config``.
        user_agent: the ``User-Agent`` of every request.
        connect_timeout: seconds to wait for a TCP (and TLS) connection.
    """

    def __init__(
        self,
        *,
        hosts_dir: Path | None = None,
        docker_config: Path | None = None,
        credentials: Mapping[str, tuple[str, str]] | None = None,
        user_agent: str = "flotilla/0.1",
        connect_timeout: float = 30.0,
    ) -> None:
        self._hosts_dir = hosts_dir
        self._credentials = Credentials(credentials, docker_config)
        self._user_agent = user_agent
        self._connect_timeout = connect_timeout
        self._tls = TLSContexts()
        self._session: aiohttp.ClientSession | None = None
        self._transport: Transport | None = None

    def transport(self) -> Transport:
        """The shared transport, made on first use (inside the running event loop)."""
        if self._transport is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=_CONNECTIONS),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._connect_timeout, sock_read=_READ_TIMEOUT
                ),
                auto_decompress=False,  # blobs are compared by digest as the registry sent them
                trust_env=False,
            )
            self._transport = Transport(
                self._session, self._tls, self._credentials, self._user_agent
            )
        return self._transport

    async def close(self) -> None:
        """Close every connection; the object is not to be used afterwards."""
        if self._session is not None:
            await self._session.close()
        self._session, self._transport = None, None

    def repository(
        self,
        ref: Reference,
        *,
        plain_http: bool = False,
        skip_verify: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> Repository:
        """The repository ``ref.domain/ref.path`` over its configured endpoints.

        Args:
            ref: a normalized reference (its tag and digest are not used).
            plain_http: the registry itself speaks plain HTTP.
            skip_verify: do not verify TLS certificates unless ``hosts.toml`` says otherwise.
            credentials: (user, secret) for the reference's registry, for this repository
                only; they win over the process's and are never sent to its mirrors.

        Raises:
            InvalidArgument: a ``hosts.toml`` for the registry is malformed.
        """
        endpoints = hosts_for(
            ref.domain, self._hosts_dir, plain_http=plain_http, skip_verify=skip_verify
        )
        cred = Credential(*credentials) if credentials is not None else None
        return Repository(self, ref.domain, ref.path, tuple(endpoints), cred)


class Repository:
    """One repository on a registry; see the module of each operation for the details."""

    def __init__(
        self,
        registries: Registries,
        domain: str,
        path: str,
        endpoints: tuple[RegistryHost, ...],
        credential: Credential | None = None,
    ) -> None:
        self._registries = registries
        self._credential = credential
        self.domain = domain
        self.path = path
        self.endpoints = endpoints

    def _ctx(self) -> RepoContext:
        transport = self._registries.transport()
        return RepoContext(transport, self.domain, self.path, self.endpoints, self._credential)

    async def resolve(self, reference: str) -> oci.Descriptor:
        """The descriptor a tag or digest names (:func:`.fetch.resolve`)."""
        return await fetch.resolve(self._ctx(), reference)

    async def fetch_document(self, desc: oci.Descriptor) -> bytes:
        """A manifest, index or config, checked (:func:`.fetch.fetch_document`)."""
        return await fetch.fetch_document(self._ctx(), desc)

    def fetch(
        self, desc: oci.Descriptor, offset: int = 0
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """A blob's bytes from ``offset``, not verified (:func:`.fetch.open_blob`)."""
        return fetch.open_blob(self._ctx(), desc, offset)

    async def blob_exists(self, desc: oci.Descriptor) -> bool:
        """Whether the repository has the blob (:func:`.push.blob_exists`)."""
        return await push.blob_exists(self._ctx(), desc)

    async def mount_blob(self, desc: oci.Descriptor, from_repository: str) -> bool:
        """Mount a blob from another repository of the registry (:func:`.push.mount_blob`)."""
        return await push.mount_blob(self._ctx(), desc, from_repository)

    async def push_blob(
        self,
        desc: oci.Descriptor,
        chunks: Callable[[], AsyncIterator[bytes]],
        *,
        chunk_size: int = 0,
    ) -> None:
        """Upload a blob (:func:`.push.push_blob`)."""
        await push.push_blob(self._ctx(), desc, chunks, chunk_size=chunk_size)

    async def push_manifest(self, desc: oci.Descriptor, data: bytes, tag: str = "") -> None:
        """Upload a manifest or index, tagged or by digest (:func:`.push.push_manifest`)."""
        await push.push_manifest(self._ctx(), desc, data, tag)
