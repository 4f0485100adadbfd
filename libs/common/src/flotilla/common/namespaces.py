"""containerd's namespace names: what every core checks before touching namespaced state.

A namespace name follows containerd's identifier rules (``pkg/identifiers``): alphanumeric
runs joined by single ``.``, ``_`` or ``-``, at most 76 characters. Names that pass are safe
as a filesystem path component, but Flotilla never puts them in NATS subjects (``k8s.io``
has a dot); the namespace travels in a header instead.
"""

from __future__ import annotations

import re
from typing import Final

from flotilla.common.errdefs import InvalidArgument

__all__ = ["MAX_LENGTH", "identifier", "validate"]

MAX_LENGTH: Final = 76

_NAME: Final = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


def validate(namespace: str) -> str:
    """``namespace`` itself once it is a valid namespace name.

    Raises:
        InvalidArgument: if the name is empty, too long or malformed.
    """
    return identifier(namespace, "namespace")


def identifier(value: str, what: str) -> str:
    """``value`` itself once it is a valid containerd identifier; ``what`` names it in errors.

    Namespaces, container ids and lease ids are identifiers.

    Raises:
        InvalidArgument: if the identifier is empty, too long or malformed.
    """
    if not value:
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > MAX_LENGTH:
        raise InvalidArgument(
            f"{what} {value[:MAX_LENGTH]!r}... greater than maximum length "
            f"({MAX_LENGTH} characters)"
        )
    # fullmatch, not match: "$" would accept a trailing newline.
    if not _NAME.fullmatch(value):
        raise InvalidArgument(f"{what} {value!r} must match {_NAME.pattern}")
    return value
