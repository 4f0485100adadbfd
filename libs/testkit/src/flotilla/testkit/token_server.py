"""A Docker token server (the registry's ``auth.token``) for the pull and push tests.

It implements the token protocol distribution's registry trusts: ``GET /token?service=..&scope=..``
with optional basic auth, and the OAuth2 form ``POST /token`` (``grant_type=password`` or
``refresh_token``) that containerd uses when it has credentials. Tokens are ES256 JWTs whose
``x5c`` header carries the self-signed certificate the registry has as its ``rootcertbundle``.

Usage::

    async with token_server(users={"user": "secret"}) as ts:
        async with local_registry(token=ts.auth()) as reg:
            ...
        assert ts.requests[0].user == "user"
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from flotilla.testkit.registry import TokenAuth

__all__ = ["TokenRequest", "TokenServer", "serve", "token_server"]

DEFAULT_SERVICE = "flotilla-registry"
DEFAULT_ISSUER = "flotilla-token-server"
_PULL = "pull"


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered (or refused).

    Attributes:
        user: Who it was issued to (None: anonymous, or refused credentials).
        scopes: The scopes asked for, as sent (``repository:busybox:pull,push``).
        basic: Whether the request came with basic auth.
        method: ``GET`` (the token protocol) or ``POST`` (the OAuth2 form).
        service: The ``service`` parameter.
        status: The HTTP status it was answered with.
        grant_type: The OAuth2 ``grant_type`` of a POST.
    """

    user: str | None
    scopes: tuple[str, ...]
    basic: bool
    method: str = "GET"
    service: str | None = None
    status: int = 200
    grant_type: str | None = None


class _Signer:
    """An ES256 key and its self-signed certificate (valid for a day)."""

    def __init__(self, issuer: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = time.time()
        usage = x509.KeyUsage(
            digital_signature=True,  # distribution requires it on the signing certificate
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now - 3600))
            .not_valid_after(_utc(now + 86400))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def jwt(self, claims: Mapping[str, Any]) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}"
        r, s = decode_dss_signature(
            self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        # JWS wants the raw r || s, 32 bytes each, not the DER the library returns.
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """A running token server on 127.0.0.1.

    Attributes:
        port: Its TCP port.
        service: The registry's name (the tokens' audience).
        issuer: The tokens' issuer.
        cert_bundle: The PEM certificate the registry must trust.
        users: Name -> password of the users it knows.
        anonymous_pull: Whether anonymous requests get pull access.
        ttl: Token lifetime in seconds.
        oauth: Whether it answers the OAuth2 ``POST`` (if not: 405, as registries without
            it do, and clients fall back to ``GET``).
        requests: Every token request it saw, in order (refused ones included).
    """

    port: int
    service: str
    issuer: str
    cert_bundle: Path
    users: Mapping[str, str]
    anonymous_pull: bool = False
    ttl: int = 300
    oauth: bool = True
    requests: list[TokenRequest] = field(default_factory=list)
    _signer: _Signer | None = None
    _refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> user

    @property
    def realm(self) -> str:
        """The token endpoint, ``http://127.0.0.1:PORT/token``."""
        return f"http://127.0.0.1:{self.port}/token"

    def auth(self) -> TokenAuth:
        """What ``local_registry(token=...)`` needs to trust this server (and a user to log in)."""
        first = next(iter(self.users.items()), None)
        return TokenAuth(self.realm, self.service, self.issuer, self.cert_bundle, first)

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /token`` (the token protocol) and ``POST /token`` (OAuth2)."""
        if request.method == "POST" and self.oauth:
            return await self._oauth(request)
        if request.method != "GET":
            self.requests.append(TokenRequest(None, (), False, request.method, None, 405))
            return web.json_response({"errors": [{"code": "UNSUPPORTED"}]}, status=405)
        # Clients repeat ``scope``; some also join scopes with spaces (as the OAuth2 form does).
        scopes = tuple(s for param in request.query.getall("scope", []) for s in param.split())
        service = request.query.get("service")
        basic = request.headers.get("Authorization", "").lower().startswith("basic ")
        user, ok = self._login(request.headers.get("Authorization"))
        if not ok or (user is None and not self.anonymous_pull):
            return self._refuse(TokenRequest(user, scopes, basic, "GET", service, 401))
        self.requests.append(TokenRequest(user, scopes, basic, "GET", service))
        token = self._issue(user, scopes)
        body: dict[str, Any] = {"token": token, "access_token": token}
        if request.query.get("offline_token") == "true" and user is not None:
            body["refresh_token"] = self._new_refresh(user)
        return web.json_response({**body, **self._times()})

    async def _oauth(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        scopes = tuple(str(form.get("scope", "")).split())
        service = str(form.get("service", "")) or None
        basic = request.headers.get("Authorization", "").lower().startswith("basic ")
        user: str | None = None
        if grant == "password":
            name, password = str(form.get("username", "")), str(form.get("password", ""))
            user = name if self.users.get(name) == password and name else None
        elif grant == "refresh_token":
            user = self._refresh.get(str(form.get("refresh_token", "")))
        if user is None:
            return self._refuse(TokenRequest(None, scopes, basic, "POST", service, 401, grant))
        self.requests.append(TokenRequest(user, scopes, basic, "POST", service, 200, grant))
        body = {
            "access_token": self._issue(user, scopes),
            "scope": " ".join(scopes),
            "refresh_token": self._new_refresh(user),
        }
        return web.json_response({**body, **self._times()})

    def _refuse(self, seen: TokenRequest) -> web.Response:
        self.requests.append(seen)
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'},
        )

    def _login(self, authorization: str | None) -> tuple[str | None, bool]:
        """(user or None for anonymous, whether the credentials, if any, are right)."""
        if not authorization or not authorization.lower().startswith("basic "):
            return None, True
        try:
            name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        ok = name in self.users and self.users[name] == password
        return (name if ok else None), ok

    def _new_refresh(self, user: str) -> str:
        token = secrets.token_urlsafe(24)
        self._refresh[token] = user
        return token

    def _times(self) -> dict[str, Any]:
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {"expires_in": self.ttl, "issued_at": issued}

    def _issue(self, user: str | None, scopes: tuple[str, ...]) -> str:
        assert self._signer is not None
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [_grant(scope, anonymous=user is None) for scope in scopes],
        }
        return self._signer.jwt(claims)


def _grant(scope: str, *, anonymous: bool) -> dict[str, Any]:
    """``repository:name:pull,push`` -> the claim granting it (anonymous users: pull only)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    wanted = [action for action in actions.split(",") if action]
    if anonymous:
        wanted = [action for action in wanted if action == _PULL]
    return {"type": kind, "name": name, "actions": wanted}


@asynccontextmanager
async def token_server(
    users: Mapping[str, str],
    *,
    anonymous_pull: bool = False,
    service: str = DEFAULT_SERVICE,
    issuer: str = DEFAULT_ISSUER,
    ttl: int = 300,
    oauth: bool = True,
) -> AsyncIterator[TokenServer]:
    """Run a token server on a free 127.0.0.1 port.

    Args:
        users: Name -> password of the users it grants every requested action to.
        anonymous_pull: Give anonymous requests pull access (otherwise they get 401).
        service: The registry's name.
        issuer: The tokens' issuer.
        ttl: Token lifetime in seconds. The registry allows 60 s of clock skew past it: a
            ``ttl`` below -60 issues tokens it refuses at once (settable later as ``ts.ttl``).
        oauth: Answer the OAuth2 ``POST`` form (otherwise 405); settable later as ``ts.oauth``.
    """
    directory = Path(tempfile.mkdtemp(prefix="flotilla-token-"))
    try:
        signer = _Signer(issuer)
        bundle = directory / "root.pem"
        bundle.write_bytes(signer.pem())
        server = TokenServer(0, service, issuer, bundle, dict(users), anonymous_pull, ttl, oauth)
        server._signer = signer
        app = web.Application()
        app.router.add_route("*", "/token", server.handle)
        async with serve(app) as port:
            server.port = port
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[int]:
    """Serve ``app`` on a free 127.0.0.1 port (the OS picks it: no race); yields the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port: int = runner.addresses[0][1]
        yield port
    finally:
        await runner.cleanup()
