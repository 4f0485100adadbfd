"""TLS settings of a registry endpoint as an ``ssl.SSLContext``, built once per setting."""

from __future__ import annotations

import ssl
from pathlib import Path

from flotilla.common.errdefs import InvalidArgument
from flotilla.images.remotes.hosts import RegistryHost

__all__ = ["TLSContexts"]

_Key = tuple[bool, tuple[Path, ...], tuple[tuple[Path, Path | None], ...]]


class TLSContexts:
    """``ssl.SSLContext`` per (skip_verify, CAs, client certs), cached for the process."""

    def __init__(self) -> None:
        self._cache: dict[_Key, ssl.SSLContext] = {}

    def default(self) -> ssl.SSLContext:
        """The system trust store, verifying host names (redirect targets, token servers)."""
        return self._get((False, (), ()))

    def for_host(self, host: RegistryHost) -> ssl.SSLContext:
        """The context for ``host``'s settings.

        Raises:
            InvalidArgument: a CA or client certificate file cannot be loaded (naming it).
        """
        return self._get((host.skip_verify, host.ca, host.client_certs))

    def _get(self, key: _Key) -> ssl.SSLContext:
        context = self._cache.get(key)
        if context is None:
            context = self._cache[key] = _build(*key)
        return context


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
