"""Image references as Docker and containerd read them (``docker/reference``'s normalized names).

``busybox`` is ``docker.io/library/busybox:latest``; ``me/app`` is ``docker.io/me/app:latest``;
``localhost:5000/app@sha256:...`` names a registry (a first component with a ``.`` or ``:``, or
``localhost``), a repository, and a digest. ``index.docker.io`` is ``docker.io``. Repository
names are lower case; tags are at most 128 word characters, dots and dashes; a whole name is at
most 255 characters. Anything else is InvalidArgument saying why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from flotilla.common import digests
from flotilla.common.errdefs import InvalidArgument

__all__ = ["DEFAULT_DOMAIN", "DEFAULT_TAG", "Reference", "parse"]

DEFAULT_DOMAIN: Final = "docker.io"
DEFAULT_TAG: Final = "latest"
_LEGACY_DOMAIN: Final = "index.docker.io"
_OFFICIAL: Final = "library/"
_MAX_NAME: Final = 255

_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH: Final = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN: Final = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
)
_TAG: Final = re.compile(r"[\w][\w.-]{0,127}")
_ID: Final = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    """A normalized reference: registry domain, repository path, tag and/or digest."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``domain/path``, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """What a registry is asked for: the digest when there is one, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def familiar(self) -> str:
        """The short form Docker prints (``busybox:latest``, ``me/app:1``)."""
        text = str(self)
        if self.domain != DEFAULT_DOMAIN:
            return text
        text = text[len(DEFAULT_DOMAIN) + 1 :]
        return text[len(_OFFICIAL) :] if text.startswith(_OFFICIAL) else text


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """``text`` normalized; a reference with neither tag nor digest gets ``latest``.

    Args:
        text: what a user typed (``busybox``, ``ghcr.io/o/r:1``, ``r@sha256:...``).
        default_tag: add ``latest`` when there is neither tag nor digest.

    Raises:
        InvalidArgument: naming ``text`` and what is wrong with it.
    """
    if not text:
        raise InvalidArgument("invalid reference format: empty reference")
    if _ID.fullmatch(text):
        raise InvalidArgument(
            f"invalid repository name {text!r}: cannot specify 64-byte hexadecimal strings"
        )
    remainder, _, digest = text.partition("@")
    if digest:
        _check_digest(text, digest)
    remainder, tag = _split_tag(remainder)
    if tag is not None and not _TAG.fullmatch(tag):
        raise InvalidArgument(f"invalid reference format: {text!r}: bad tag {tag!r}")
    domain, path = _split_domain(remainder)
    _check_path(text, path)
    if len(f"{domain}/{path}") > _MAX_NAME:
        raise InvalidArgument(f"invalid reference format: {text!r}: longer than {_MAX_NAME}")
    if tag is None and not digest and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag or "", digest)


def _check_digest(text: str, digest: str) -> None:
    try:
        digests.validate(digest)
    except InvalidArgument as err:
        raise InvalidArgument(f"invalid reference format: {text!r}: {err}") from err


def _split_tag(remainder: str) -> tuple[str, str | None]:
    """The name and the tag: a ``:`` after the last ``/`` starts the tag (not a port)."""
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > slash:
        return remainder[:colon], remainder[colon + 1 :]
    return remainder, None


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            raise InvalidArgument(f"invalid reference format: bad registry {first!r}")
        domain, path = first, rest
        if domain == _LEGACY_DOMAIN:
            domain = DEFAULT_DOMAIN
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL + path
    return domain, path


def _check_path(text: str, path: str) -> None:
    if _PATH.fullmatch(path):
        return
    if _PATH.fullmatch(path.lower()):
        raise InvalidArgument(
            f"invalid reference format: {text!r}: repository name must be lowercase"
        )
    raise InvalidArgument(f"invalid reference format: {text!r}")
