"""Registry credentials: given ones first, then Docker's ``config.json``.

``config.json`` keeps one entry per registry under ``auths``: ``auth`` (base64 of
``user:secret``), or ``username`` and ``password``, and possibly an ``identitytoken`` (an OAuth
refresh token). Keys are host names or URLs (``https://index.docker.io/v1/`` is Docker Hub).
Credentials are looked up by the host name a request goes to; Docker Hub's names
(``docker.io``, ``index.docker.io``, ``registry-1.docker.io``) are one registry.
Credential helpers (``credsStore``) are not run.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from flotilla.common.errdefs import InvalidArgument

__all__ = ["Credential", "Credentials", "host_key", "load_docker_config"]

_DOCKER_HUB: Final = "docker.io"
_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True)
class Credential:
    """What to authenticate with at one registry.

    Attributes:
        username: the user, or ``""`` with an identity token.
        secret: the password or personal access token.
        identity_token: an OAuth refresh token for the registry's token server.
    """

    username: str = ""
    secret: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:  # never print a secret by accident
        return f"Credential(username={self.username!r})"

    @property
    def has_password(self) -> bool:
        """Whether there is a user and a secret for Basic authentication."""
        return bool(self.username and self.secret)


def host_key(name: str) -> str:
    """The registry a ``config.json`` key or a host name stands for (``host[:port]``)."""
    name = name.strip()
    name = urlsplit(name).netloc if "://" in name else name.split("/", 1)[0]
    name = name.lower()
    return _DOCKER_HUB if name in _HUB_ALIASES else name


def load_docker_config(path: Path) -> dict[str, Credential]:
    """The ``auths`` of a Docker ``config.json``, by :func:`host_key`; {} if the file is absent.

    Raises:
        InvalidArgument: the file is not JSON, or an entry is malformed (naming the file and key).
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise InvalidArgument(f"docker config {path}: {err.strerror}") from err
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"docker config {path}: not JSON ({err})") from None
    auths = doc.get("auths", {}) if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise InvalidArgument(f"docker config {path}: auths must be an object")
    found: dict[str, Credential] = {}
    for key, entry in auths.items():
        cred = _entry(path, key, entry)
        # An exact host entry wins over a URL form of the same registry.
        if cred is not None and (host_key(key) not in found or "://" not in key):
            found[host_key(key)] = cred
    return found


def _entry(path: Path, key: str, entry: object) -> Credential | None:
    if not isinstance(entry, dict):
        raise InvalidArgument(f"docker config {path}: auths.{key} must be an object")
    fields = {k: entry.get(k, "") for k in ("auth", "username", "password", "identitytoken")}
    for name, value in fields.items():
        if not isinstance(value, str):
            raise InvalidArgument(f"docker config {path}: auths.{key}.{name} must be a string")
    username, secret = fields["username"], fields["password"]
    if fields["auth"]:
        username, secret = _decode_auth(path, key, fields["auth"])
    token = fields["identitytoken"]
    if not (username and secret) and not token:
        return None
    return Credential(username, secret, token)


def _decode_auth(path: Path, key: str, auth: str) -> tuple[str, str]:
    try:
        text = base64.b64decode(auth.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(f"docker config {path}: auths.{key}.auth is not base64") from None
    user, sep, secret = text.partition(":")
    if not sep:
        raise InvalidArgument(f"docker config {path}: auths.{key}.auth is not user:secret")
    return user, secret


class Credentials:
    """Credentials by registry host: the given mapping, then ``config.json`` (read once)."""

    def __init__(
        self,
        given: Mapping[str, tuple[str, str]] | None = None,
        docker_config: Path | None = None,
    ) -> None:
        self._given = {host_key(h): Credential(u, s) for h, (u, s) in (given or {}).items()}
        self._config_path = docker_config
        self._config: dict[str, Credential] | None = None

    def lookup(self, host: str) -> Credential | None:
        """The credential for requests to ``host`` (``host[:port]``), or None.

        Raises:
            InvalidArgument: ``config.json`` is malformed.
        """
        key = host_key(host)
        cred = self._given.get(key)
        if cred is not None:
            return cred
        if self._config_path is None:
            return None
        if self._config is None:
            self._config = load_docker_config(self._config_path)
        return self._config.get(key)
