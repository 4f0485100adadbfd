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

__all__ = ["MAX_LENGTH", "validate"]

MAX_LENGTH: Final = 76

_NAME: Final = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


def validate(namespace: str) -> str:
    """``namespace`` itself once it is a valid namespace name.

    Raises:
        InvalidArgument: if the name is empty, too long or malformed.
    """
    if not namespace:
        raise InvalidArgument("namespace must not be empty")
    if len(namespace) > MAX_LENGTH:
        raise InvalidArgument(
            f"namespace {namespace[:MAX_LENGTH]!r}... greater than maximum length "
            f"({MAX_LENGTH} characters)"
        )
    # fullmatch, not match: "$" would accept a trailing newline.
    if not _NAME.fullmatch(namespace):
        raise InvalidArgument(f"namespace {namespace!r} must match {_NAME.pattern}")
    return namespace
