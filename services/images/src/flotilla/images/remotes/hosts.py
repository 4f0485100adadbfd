"""Registry host configuration: containerd's ``certs.d/<host>/hosts.toml``.

``hosts_for`` turns a registry name into the ordered endpoints a pull or push tries, as
containerd's ``config.ConfigureHosts`` with ``HostDirFromRoot`` does: the ``[host."..."]`` mirrors
in file order, then the ``server`` (by default the registry itself). The lookup directory for
``host:port`` is ``host_port_``, then ``host:port``, then ``_default``; the first one that exists
wins. A directory without ``hosts.toml`` follows Docker's certificate layout (``*.crt`` CAs,
``*.cert`` + ``*.key`` client pairs). Paths in the file are relative to its directory.

This module only reads files; it opens no connections and loads no certificates.
"""

from __future__ import annotations

import ipaddress
import posixpath
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

from flotilla.common.errdefs import InvalidArgument

__all__ = ["ALL_CAPABILITIES", "RegistryHost", "Scheme", "hosts_for"]

Scheme = Literal["https", "http"]
ALL_CAPABILITIES: frozenset[str] = frozenset({"pull", "resolve", "push"})
_DOCKER_HUB = "docker.io"
_DOCKER_HUB_ENDPOINT = "registry-1.docker.io"


@dataclass(frozen=True)
class RegistryHost:
    """One endpoint to try for a registry.

    Attributes:
        host: ``host[:port]`` to connect to.
        scheme: ``https`` or ``http``.
        path: API root, ``/v2`` unless the file's URL or ``override_path`` says otherwise.
        capabilities: which of ``pull``, ``resolve``, ``push`` this endpoint is trusted with.
        skip_verify: do not verify the server's certificate chain and host name.
        ca: CA certificate files, added to the system pool.
        client_certs: ``(cert, key)`` pairs; a ``None`` key means the cert file holds the key.
        headers: extra request headers, each with one or more values.
        override_path: ``path`` is the API root as given, without ``/v2`` appended.
        http_fallback: try HTTPS first and retry as plain HTTP on a TLS handshake failure
            (containerd does this for an ``http`` host that has TLS settings, e.g. localhost).
    """

    host: str
    scheme: Scheme = "https"
    path: str = "/v2"
    capabilities: frozenset[str] = ALL_CAPABILITIES
    skip_verify: bool = False
    ca: tuple[Path, ...] = ()
    client_certs: tuple[tuple[Path, Path | None], ...] = ()
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    override_path: bool = False
    http_fallback: bool = False


@dataclass(frozen=True)
class _Entry:
    """One host as the file states it; ``host`` is empty for the default server."""

    host: str = ""
    scheme: Scheme = "https"
    path: str = "/v2"
    capabilities: frozenset[str] = ALL_CAPABILITIES
    skip_verify: bool | None = None
    ca: tuple[Path, ...] = ()
    client_certs: tuple[tuple[Path, Path | None], ...] = ()
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    override_path: bool = False


def hosts_for(
    registry: str,
    config_dir: Path | None,
    *,
    plain_http: bool = False,
    skip_verify: bool = False,
) -> list[RegistryHost]:
    """Return the endpoints to try for ``registry``, best first.

    Args:
        registry: registry name as in an image reference, ``host[:port]`` (``docker.io``).
        config_dir: the ``certs.d`` directory, or None for no configuration.
        plain_http: the default server speaks plain HTTP (``ctr --plain-http``).
        skip_verify: default for hosts whose file does not set ``skip_verify``.

    Raises:
        InvalidArgument: ``registry`` is not a host name, or a ``hosts.toml`` is malformed.
    """
    _check_registry(registry)
    entries = [_Entry()]
    if config_dir is not None:
        directory = _host_dir(config_dir, registry)
        if directory is not None:
            entries = _load_dir(directory)
    entries[-1] = _default_server(entries[-1], registry, plain_http)
    return [_finish(e, skip_verify) for e in entries]


def _check_registry(registry: str) -> None:
    # The name becomes a directory name: keep it from walking out of config_dir.
    if not registry or "/" in registry or "\\" in registry or registry in (".", ".."):
        raise InvalidArgument(f"registry {registry!r}: not a host name")


def _host_dir(root: Path, registry: str) -> Path | None:
    candidates = []
    idx = registry.rfind(":")
    if idx > 0:
        candidates.append(root / f"{registry[:idx]}_{registry[idx + 1 :]}_")
    candidates += [root / registry, root / "_default"]
    return next((c for c in candidates if c.exists()), None)


def _load_dir(directory: Path) -> list[_Entry]:
    path = directory / "hosts.toml"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    except OSError as err:
        raise InvalidArgument(f"hosts file {path}: {err.strerror}") from err
    if not data:
        return [_cert_files(directory)]
    return _parse_file(path, data)


def _cert_files(directory: Path) -> _Entry:
    """Docker's layout: ``*.crt`` are CAs, ``x.cert`` a client cert with key ``x.key``."""
    files = sorted(p for p in directory.iterdir() if not p.is_dir())
    ca = tuple(p for p in files if p.name.endswith(".crt"))
    pairs: list[tuple[Path, Path | None]] = []
    for cert in (p for p in files if p.name.endswith(".cert")):
        key = cert.with_name(cert.name[: -len(".cert")] + ".key")
        pairs.append((cert, key if key.exists() else None))
    return _Entry(ca=ca, client_certs=tuple(pairs))


def _parse_file(path: Path, data: bytes) -> list[_Entry]:
    try:
        doc = tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"hosts file {path}: {err}") from err
    base = path.parent
    mirrors = doc.get("host", {})
    if not isinstance(mirrors, dict):
        raise _bad(path, "host", "must be a table of tables")
    entries = []
    for url, table in mirrors.items():
        key = f'host."{url}"'
        if not isinstance(table, dict):
            raise _bad(path, key, "must be a table")
        entries.append(_parse_entry(path, key, base, url, table))
    server = doc.get("server", "")
    if not isinstance(server, str):
        raise _bad(path, "server", "must be a string")
    entries.append(_parse_entry(path, "", base, server, doc))
    return entries


def _parse_entry(path: Path, key: str, base: Path, url: str, table: dict[str, object]) -> _Entry:
    def name(field_name: str) -> str:
        return f"{key}.{field_name}" if key else field_name

    override = _bool(path, name("override_path"), table.get("override_path", False))
    skip = table.get("skip_verify")
    scheme: Scheme = "https"
    host, api_path = "", "/v2"
    if url:
        scheme, host, api_path = _parse_url(path, key or "server", url, override)
    return _Entry(
        host=host,
        scheme=scheme,
        path=api_path,
        capabilities=_capabilities(path, name("capabilities"), table.get("capabilities")),
        skip_verify=None if skip is None else _bool(path, name("skip_verify"), skip),
        ca=_ca(path, name("ca"), base, table.get("ca")),
        client_certs=_client(path, name("client"), base, table.get("client")),
        headers=_headers(path, name("header"), table.get("header")),
        override_path=override,
    )


def _parse_url(path: Path, key: str, url: str, override: bool) -> tuple[Scheme, str, str]:
    if "://" not in url:  # a bare host[:port] means https
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad(path, key, f"{url!r} is not an http(s) URL")
    api_path = posixpath.normpath(parts.path).rstrip("/") if parts.path else ""
    if not override and not api_path.endswith("/v2"):
        api_path += "/v2"
    return cast(Scheme, parts.scheme), parts.netloc, api_path


def _bool(path: Path, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, key, "must be true or false")
    return value


def _strings(path: Path, key: str, value: object) -> list[str]:
    """A string or a list of strings, as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return cast(list[str], value)
    raise _bad(path, key, "must be a string or a list of strings")


def _capabilities(path: Path, key: str, value: object) -> frozenset[str]:
    if value is None:
        return ALL_CAPABILITIES
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, key, "must be a list of strings")
    caps = frozenset(v.lower() for v in value)
    unknown = sorted(caps - ALL_CAPABILITIES)
    if unknown:
        raise _bad(path, key, f"unknown capability {unknown[0]!r}")
    # An empty list means "not said", as in containerd.
    return caps or ALL_CAPABILITIES


def _abs(base: Path, p: str) -> Path:
    return base / p  # an absolute p replaces base


def _ca(path: Path, key: str, base: Path, value: object) -> tuple[Path, ...]:
    if value is None:
        return ()
    return tuple(_abs(base, p) for p in _strings(path, key, value))


def _client(
    path: Path, key: str, base: Path, value: object
) -> tuple[tuple[Path, Path | None], ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    pairs: list[tuple[Path, Path | None]] = []
    for item in items:
        if isinstance(item, str):
            pairs.append((_abs(base, item), None))
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item):
            cert, keyfile = item
            # An empty key ("") means the certificate file also holds the key.
            pairs.append((_abs(base, cert), _abs(base, keyfile) if keyfile else None))
        else:
            raise _bad(path, key, "must be a path, a list of paths or a list of [cert, key] pairs")
    return tuple(pairs)


def _headers(path: Path, key: str, value: object) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(path, key, "must be a table")
    return {k: tuple(_strings(path, f"{key}.{k}", v)) for k, v in value.items()}


def _bad(path: Path, key: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"hosts file {path}: {key}: {why}")


def _split_port(host: str) -> str:
    """The port of ``host[:port]`` or ``[v6]:port``, or ``""``."""
    if host.startswith("["):
        _, _, rest = host.partition("]")
        return rest[1:] if rest.startswith(":") else ""
    name, sep, port = host.rpartition(":")
    return port if sep and ":" not in name else ""


def _hostname(host: str) -> str:
    port = _split_port(host)
    name = host[: -len(port) - 1] if port else host
    return name.removeprefix("[").removesuffix("]")


def _is_localhost(host: str) -> bool:
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _default_server(entry: _Entry, registry: str, plain_http: bool) -> _Entry:
    """Fill in the registry itself when the file names no ``server``."""
    if entry.host:
        return entry
    scheme: Scheme = "https"
    skip = entry.skip_verify
    host = registry
    if registry == _DOCKER_HUB:
        host = _DOCKER_HUB_ENDPOINT
    elif plain_http:
        scheme = "http"
    elif _is_localhost(registry):
        # containerd: a local registry on a non-TLS port is ambiguous; use http (which turns
        # into https-then-http below) and do not verify its certificate, except on port 80.
        port = _split_port(registry)
        scheme = "https" if port in ("", "443") else "http"
        if port != "80":
            skip = True
    return _Entry(
        host=host,
        scheme=scheme,
        skip_verify=skip,
        ca=entry.ca,
        client_certs=entry.client_certs,
        headers=entry.headers,
    )


def _finish(entry: _Entry, default_skip_verify: bool) -> RegistryHost:
    # containerd: an http host with TLS settings (its own or the caller's) tries https first and
    # falls back to http, unless port 80 leaves no doubt.
    explicit_tls = (
        default_skip_verify
        or entry.skip_verify is not None
        or bool(entry.ca)
        or bool(entry.client_certs)
    )
    scheme, fallback = entry.scheme, False
    if scheme == "http" and explicit_tls and _split_port(entry.host) != "80":
        scheme, fallback = "https", True
    return RegistryHost(
        host=entry.host,
        scheme=scheme,
        path=entry.path,
        capabilities=entry.capabilities,
        skip_verify=default_skip_verify if entry.skip_verify is None else entry.skip_verify,
        ca=entry.ca,
        client_certs=entry.client_certs,
        headers=entry.headers,
        override_path=entry.override_path,
        http_fallback=fallback,
    )
