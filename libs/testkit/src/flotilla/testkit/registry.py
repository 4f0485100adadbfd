"""A local, plain-http distribution v2 registry (Debian's ``docker-registry``).

Usage::

    async with local_registry() as reg:
        await push_image(image, reg.host)
        digest = await reg.manifest_digest("busybox", "latest")

With authentication: ``local_registry(htpasswd={"user": "secret"})`` (basic auth against a
bcrypt htpasswd file the kit writes) or ``local_registry(token=ts.auth())`` (bearer tokens from a
``token_server``); ``reg.credentials`` then holds the user and password to push and pull with.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from flotilla.testkit import _http
from flotilla.testkit._proc import Process, free_port, start_daemon, stop_process, wait_until
from flotilla.testkit.oci import MANIFEST_ACCEPT
from flotilla.testkit.programs import require

__all__ = [
    "LocalRegistry",
    "TokenAuth",
    "basic_auth",
    "local_registry",
    "registry_config",
    "write_htpasswd",
]

_START_ATTEMPTS = 3  # the free port may be taken between probing and binding
_BCRYPT_ROUNDS = 4  # the registry checks the hash on every request: the cheapest cost it accepts
HTPASSWD_REALM = "flotilla-registry"


@dataclass(frozen=True)
class TokenAuth:
    """The registry side of token authentication (distribution's ``auth.token``).

    Attributes:
        realm: The token endpoint the registry's challenges send clients to.
        service: The registry's name; tokens must carry it as their audience.
        issuer: The tokens' ``iss``.
        cert_bundle: PEM certificates whose keys may sign tokens (``rootcertbundle``).
        credentials: A user and password the token server knows, for the kit's own requests.
    """

    realm: str
    service: str
    issuer: str
    cert_bundle: Path
    credentials: tuple[str, str] | None = None


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class LocalRegistry:
    """A running registry on 127.0.0.1.

    Attributes:
        directory: Holds ``config.yml``, the ``storage/`` root and the log.
        port: Its TCP port.
        process: The registry process.
        credentials: A user and password it accepts, if authentication is on.
    """

    directory: Path
    port: int
    process: Process
    credentials: tuple[str, str] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the host part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    async def manifest_digest(self, repo: str, reference: str) -> str:
        """The ``Docker-Content-Digest`` the registry reports for ``repo:reference``.

        Raises:
            LookupError: The registry does not have that manifest.
        """
        url = f"{self.url}/v2/{repo}/manifests/{reference}"
        resp = await self.get(url, headers={"Accept": MANIFEST_ACCEPT})
        if resp.status != 200:
            raise LookupError(f"{repo}:{reference}: HTTP {resp.status} {resp.body[:200]!r}")
        return resp.headers["docker-content-digest"]

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> _http.Response:
        """``GET url`` as ``credentials`` (basic auth, or a bearer token on a Bearer challenge)."""
        resp = await _http.request("GET", url, headers=headers)
        if resp.status != 401 or self.credentials is None:
            return resp
        challenge = resp.headers.get("www-authenticate", "")
        if challenge.lower().startswith("bearer "):
            authorization = await _bearer(challenge, self.credentials)
        else:
            authorization = basic_auth(*self.credentials)
        return await _http.request(
            "GET", url, headers={**(headers or {}), "Authorization": authorization}
        )

    async def is_ready(self) -> bool:
        """Whether ``GET /v2/`` answers 200 (or 401: authentication is on, and it answers)."""
        try:
            resp = await _http.request("GET", f"{self.url}/v2/", socket_timeout=2.0)
        except OSError:
            return False
        return resp.status in (200, 401)


_PARAM = re.compile(r'(\w+)="([^"]*)"')


async def _bearer(challenge: str, credentials: tuple[str, str]) -> str:
    """Answer a ``Bearer realm=..,service=..,scope=..`` challenge with a token from its realm."""
    params = dict(_PARAM.findall(challenge))
    query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
    resp = await _http.request(
        "GET", f"{params['realm']}?{query}", headers={"Authorization": basic_auth(*credentials)}
    )
    if resp.status != 200:
        raise PermissionError(f"token from {params['realm']}: HTTP {resp.status}")
    body = json.loads(resp.body)
    return f"Bearer {body.get('token') or body['access_token']}"


def registry_config(
    storage: Path, port: int, *, htpasswd: Path | None = None, token: TokenAuth | None = None
) -> str:
    """A distribution config.yml: filesystem storage, deletes on, 127.0.0.1 only, quiet.

    Args:
        storage: The storage root.
        port: The port to listen on.
        htpasswd: If given, basic auth against this bcrypt htpasswd file.
        token: If given, bearer tokens as ``token`` describes.
    """
    return "\n".join(
        [
            *_auth_config(htpasswd, token),
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{port}",
            "",
        ]
    )


def _auth_config(htpasswd: Path | None, token: TokenAuth | None) -> list[str]:
    if htpasswd is not None and token is not None:
        raise ValueError("a registry takes one of htpasswd and token authentication, not both")
    if htpasswd is not None:
        return ["auth:", "  htpasswd:", f"    realm: {HTPASSWD_REALM}", f"    path: {htpasswd}"]
    if token is not None:
        return [
            "auth:",
            "  token:",
            f"    realm: {token.realm}",
            f"    service: {token.service}",
            f"    issuer: {token.issuer}",
            f"    rootcertbundle: {token.cert_bundle}",
        ]
    return []


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    """Write ``users`` (name -> password) as bcrypt htpasswd (distribution reads no other kind)."""
    lines = []
    for user, password in users.items():
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=_BCRYPT_ROUNDS))
        lines.append(f"{user}:{hashed.decode()}\n")
    path.write_text("".join(lines))
    return path


@dataclass(frozen=True)
class _Auth:
    """What a registry's authentication needs: its config inputs and the kit's credentials."""

    htpasswd: Mapping[str, str] | None
    token: TokenAuth | None
    credentials: tuple[str, str] | None


@asynccontextmanager
async def local_registry(
    *,
    htpasswd: Mapping[str, str] | None = None,
    token: TokenAuth | None = None,
    credentials: tuple[str, str] | None = None,
    parent: Path | None = None,
    ready_timeout: float = 20.0,
    binary: str = "docker-registry",
) -> AsyncIterator[LocalRegistry]:
    """Start a registry on a free port; stop it and delete its storage on exit.

    Args:
        htpasswd: Turn on basic auth for these users (name -> password).
        token: Turn on bearer-token auth with a token server (``token_server().auth()``).
        credentials: What ``LocalRegistry.credentials`` holds; by default the first
            ``htpasswd`` user, or ``token.credentials``.
        parent: Where to create the temp dir (default: the system temp dir).
        ready_timeout: Seconds to wait for ``GET /v2/`` to answer (200, or 401 with auth).
        binary: The registry executable.

    Raises:
        MissingProgram: ``binary`` is not installed (checked before anything starts).
        ValueError: Both ``htpasswd`` and ``token`` were given.
    """
    require(binary)
    if htpasswd is not None and token is not None:
        raise ValueError("local_registry: give htpasswd or token, not both")
    if credentials is None and htpasswd:
        credentials = next(iter(htpasswd.items()))
    if credentials is None and token is not None:
        credentials = token.credentials
    auth = _Auth(htpasswd, token, credentials)
    directory = Path(tempfile.mkdtemp(prefix="flotilla-registry-", dir=parent))
    try:
        registry = await _start(directory, binary, ready_timeout, auth)
        try:
            yield registry
        finally:
            await stop_process(registry.process)
    finally:
        # Off the loop: thousands of blob files take a while to unlink on a busy disk.
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)


async def _start(directory: Path, binary: str, ready_timeout: float, auth: _Auth) -> LocalRegistry:
    last: RuntimeError | None = None
    for _ in range(_START_ATTEMPTS):
        try:
            return await _start_once(directory, binary, ready_timeout, auth)
        except RuntimeError as error:  # it exited early: most likely the port was taken
            last = error
    log = (directory / "registry.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"registry did not start: {last}\n{log}")


async def _start_once(
    directory: Path, binary: str, ready_timeout: float, auth: _Auth
) -> LocalRegistry:
    port = free_port()
    htpasswd = None
    if auth.htpasswd is not None:
        htpasswd = write_htpasswd(directory / "htpasswd", auth.htpasswd)
    config = directory / "config.yml"
    config.write_text(
        registry_config(directory / "storage", port, htpasswd=htpasswd, token=auth.token)
    )
    proc = await start_daemon([binary, "serve", str(config)], directory / "registry.log")
    registry = LocalRegistry(directory, port, proc, auth.credentials)
    try:
        async with asyncio.timeout(ready_timeout):
            await wait_until(registry.is_ready, what="registry", proc=proc)
    except BaseException:
        await stop_process(proc)
        raise
    return registry
