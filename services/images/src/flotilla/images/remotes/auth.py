"""Registry authorization as containerd's docker authorizer does it.

A request goes out anonymously first. A 401 carries challenges (:mod:`.challenge`): for Basic,
the host's credentials are sent from then on; for Bearer, a token for the request's scopes is
fetched from the challenge's realm (with the host's credentials, if any) and cached per host and
scope set until it expires. State is kept per host name, so an ``Authorization`` header is only
ever attached to requests to the host that asked for it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import aiohttp
import yarl

from flotilla.common import errdefs
from flotilla.images.remotes.challenge import Challenge, parse_challenges
from flotilla.images.remotes.credentials import Credential
from flotilla.images.remotes.errors import status_error, transport_error

__all__ = ["Authorizer", "repository_scope", "scope_key"]

_CLIENT_ID: Final = "flotilla"
_DEFAULT_EXPIRY: Final = 60.0  # the token spec's default lifetime, in seconds
_MAX_TOKEN_ANSWER: Final = 1 << 20

SSLFor = Callable[[yarl.URL], Awaitable[ssl.SSLContext | bool]]


def repository_scope(path: str, *, push: bool = False) -> str:
    """The token scope for a repository: ``repository:<path>:pull`` or ``...:pull,push``."""
    return f"repository:{path}:{'pull,push' if push else 'pull'}"


def scope_key(scopes: Iterable[str]) -> str:
    """The scopes sorted, deduplicated and joined by spaces (a token cache key)."""
    return " ".join(sorted({s for scope in scopes for s in scope.split() if s}))


def basic_header(cred: Credential) -> str:
    """``Basic <base64(user:secret)>``."""
    raw = f"{cred.username}:{cred.secret}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class _Token:
    task: asyncio.Task[tuple[str, float]]
    expires_at: float = 0.0


@dataclass
class _Bearer:
    realm: yarl.URL
    service: str
    scopes: frozenset[str]
    cred: Credential | None
    tokens: dict[str, _Token] = field(default_factory=dict)


@dataclass(frozen=True)
class _Basic:
    header: str


class Authorizer:
    """Authorization state for one process, per host and credential.

    A host's state is kept apart for each credential used with it (a pull may bring its own),
    so a token fetched with one user's credentials never serves another's requests.

    Args:
        session: the HTTP session tokens are fetched with.
        ssl_for: the TLS setting for a token realm URL.
        user_agent: sent to token servers.
    """

    def __init__(self, session: aiohttp.ClientSession, ssl_for: SSLFor, user_agent: str) -> None:
        self._session = session
        self._ssl_for = ssl_for
        self._user_agent = user_agent
        self._handlers: dict[tuple[str, Credential | None], _Bearer | _Basic] = {}

    async def header(self, host: str, cred: Credential | None, scopes: Iterable[str]) -> str | None:
        """The ``Authorization`` value for a request to ``host``, or None to go anonymously.

        Args:
            host: the host the request goes to.
            cred: the credential for ``host``, if any.
            scopes: the token scopes the request needs.

        Raises:
            Unauthenticated: the token server refused the credentials.
            Unavailable: the token server cannot be reached.
            InvalidArgument: the token server's answer is malformed.
        """
        handler = self._handlers.get((host, cred))
        if handler is None:
            return None
        if isinstance(handler, _Basic):
            return handler.header
        return "Bearer " + await self._token(host, handler, scopes)

    def challenged(
        self, host: str, cred: Credential | None, values: Iterable[str], sent: str | None
    ) -> bool:
        """Take a 401's ``WWW-Authenticate`` ``values``; whether retrying may now succeed.

        Args:
            host: the host that answered 401.
            cred: the credential for ``host``, if any.
            values: its ``WWW-Authenticate`` header values.
            sent: the ``Authorization`` the refused request carried, if any.
        """
        for challenge in parse_challenges(values):
            if challenge.scheme == "bearer" and "realm" in challenge.params:
                return self._bearer((host, cred), challenge, sent)
            if challenge.scheme == "basic":
                if cred is None or not cred.has_password:
                    return False
                header = basic_header(cred)
                self._handlers[host, cred] = _Basic(header)
                return sent != header
        return False

    def _bearer(
        self, key: tuple[str, Credential | None], challenge: Challenge, sent: str | None
    ) -> bool:
        realm = yarl.URL(challenge.params["realm"])
        if realm.scheme not in ("http", "https") or not realm.host:
            return False
        service = challenge.params.get("service", "")
        scopes = frozenset(challenge.params.get("scope", "").split())
        old = self._handlers.get(key)
        if isinstance(old, _Bearer) and (old.realm, old.service) == (realm, service):
            if sent is not None and sent.startswith("Bearer "):
                # The token we sent was refused (expired, revoked, too narrow): fetch fresh
                # ones. The caller retries once, so a second refusal ends there.
                old.tokens.clear()
            return True
        self._handlers[key] = _Bearer(realm, service, scopes, key[1])
        return True

    async def _token(self, host: str, handler: _Bearer, scopes: Iterable[str]) -> str:
        # The request's own scopes; the challenge's only for a request that names none.
        # (containerd adds the first challenge's scopes to every later token of the host,
        # which asks for more than a request needs once a second repository is used.)
        key = scope_key(scopes) or scope_key(handler.scopes)
        loop = asyncio.get_running_loop()
        entry = handler.tokens.get(key)
        if entry is None or (entry.task.done() and loop.time() >= entry.expires_at):
            task = loop.create_task(self._fetch_token(host, handler, key))
            # Every waiter may be gone (cancelled) by the time it fails: mark it retrieved.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            entry = handler.tokens[key] = _Token(task)
        try:
            token, lifetime = await asyncio.shield(entry.task)
        except BaseException:
            if handler.tokens.get(key) is entry and entry.task.done():
                del handler.tokens[key]  # a failure is not cached
            raise
        if not entry.expires_at:
            entry.expires_at = loop.time() + lifetime * 0.9  # renew a little early
        return token

    async def _fetch_token(self, host: str, handler: _Bearer, key: str) -> tuple[str, float]:
        cred = handler.cred
        realm = handler.realm
        what = f"token for {key or 'no scope'} from {realm.host}"
        try:
            if cred is not None and cred.identity_token:
                answer = await self._oauth(handler, cred.identity_token, key)
            else:
                answer = await self._get(handler, cred, key)
        except aiohttp.ClientError as err:
            raise transport_error(host, what, err) from err
        except TimeoutError as err:
            raise transport_error(host, what, err) from err
        status, body, reason = answer
        if status in (401, 403):
            who = f"the credentials of {cred.username or 'the identity token'}" if cred else ""
            raise errdefs.Unauthenticated(
                f"registry {host}: token server {realm.host} refused "
                + (who or "anonymous access")
                + f" for {key or 'no scope'}"
            )
        if status >= 300:
            raise status_error(status, host, what, body, reason)
        return _parse_token(host, what, body)

    async def _get(
        self, handler: _Bearer, cred: Credential | None, key: str
    ) -> tuple[int, bytes, str]:
        query: list[tuple[str, str]] = list(handler.realm.query.items())
        if handler.service:
            query.append(("service", handler.service))
        query += [("scope", s) for s in key.split()]
        headers = {"User-Agent": self._user_agent}
        if cred is not None and cred.has_password:
            headers["Authorization"] = basic_header(cred)
        url = handler.realm.with_query(query)
        async with self._session.get(
            url, headers=headers, ssl=await self._ssl_for(url), allow_redirects=False
        ) as resp:
            return resp.status, await resp.content.read(_MAX_TOKEN_ANSWER), resp.reason or ""

    async def _oauth(self, handler: _Bearer, refresh: str, key: str) -> tuple[int, bytes, str]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": handler.service,
            "client_id": _CLIENT_ID,
        }
        if key:
            form["scope"] = key
        headers = {"User-Agent": self._user_agent}
        url = handler.realm
        async with self._session.post(
            url, data=form, headers=headers, ssl=await self._ssl_for(url), allow_redirects=False
        ) as resp:
            return resp.status, await resp.content.read(_MAX_TOKEN_ANSWER), resp.reason or ""


def _parse_token(host: str, what: str, body: bytes) -> tuple[str, float]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise errdefs.InvalidArgument(f"registry {host}: {what}: answer is not JSON") from None
    if not isinstance(doc, dict):
        raise errdefs.InvalidArgument(f"registry {host}: {what}: answer is not an object")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise errdefs.InvalidArgument(f"registry {host}: {what}: answer has no token")
    expires = doc.get("expires_in")
    lifetime = float(expires) if isinstance(expires, int | float) and expires > 0 else 0.0
    return token, lifetime or _DEFAULT_EXPIRY
