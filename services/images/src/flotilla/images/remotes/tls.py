"""TLS settings of a registry endpoint as an ``ssl.SSLContext``, built once per setting.

Building a context reads the system's CA bundle (tens of milliseconds of CPU), so it is done in
a worker thread, once per setting, and shared.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from flotilla.common.errdefs import InvalidArgument
from flotilla.images.remotes.hosts import RegistryHost

__all__ = ["TLSContexts"]

_Key = tuple[bool, tuple[Path, ...], tuple[tuple[Path, Path | None], ...]]


class TLSContexts:
    """``ssl.SSLContext`` per (skip_verify, CAs, client certs), cached for the process."""

    def __init__(self) -> None:
        self._cache: dict[_Key, asyncio.Future[ssl.SSLContext]] = {}

    async def default(self) -> ssl.SSLContext:
        """The system trust store, verifying host names (redirect targets, token servers)."""
        return await self._get((False, (), ()))

    async def for_host(self, host: RegistryHost) -> ssl.SSLContext:
        """The context for ``host``'s settings.

        Raises:
            InvalidArgument: a CA or client certificate file cannot be loaded (naming it).
        """
        return await self._get((host.skip_verify, host.ca, host.client_certs))

    async def _get(self, key: _Key) -> ssl.SSLContext:
        built = self._cache.get(key)
        if built is None or (built.done() and (built.cancelled() or built.exception())):
            # A failed build is not cached: the files may be fixed by the next request.
            built = self._cache[key] = asyncio.ensure_future(asyncio.to_thread(_build, *key))
            built.add_done_callback(lambda f: f.cancelled() or f.exception())
        return await asyncio.shield(built)


def _build(
    skip_verify: bool, ca: tuple[Path, ...], client_certs: tuple[tuple[Path, Path | None], ...]
) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for path in ca:  # added to the system pool, as containerd does
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as err:
            raise InvalidArgument(f"registry CA {path}: {_why(err)}") from None
    for cert, key in client_certs:
        try:
            context.load_cert_chain(str(cert), None if key is None else str(key))
        except (OSError, ssl.SSLError) as err:
            raise InvalidArgument(f"registry client certificate {cert}: {_why(err)}") from None
    return context


def _why(err: OSError | ssl.SSLError) -> str:
    if isinstance(err, ssl.SSLError):
        return err.reason or "not a certificate"
    return (err.strerror or "cannot read").lower()
