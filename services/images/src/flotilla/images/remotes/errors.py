"""Registry answers and transport failures as errdefs errors, one line each.

Every message starts with ``registry <host>:`` and names the object (``manifest busybox:1``,
``blob busybox@sha256:...``), then the cause; a registry's own error codes
(``{"errors": [{"code": ..., "message": ...}]}``) are added when its body has them.
"""

from __future__ import annotations

import json
from typing import Final

import aiohttp

from flotilla.common import errdefs

__all__ = ["registry_detail", "status_error", "transport_error"]

_MAX_DETAIL: Final = 200


def registry_detail(body: bytes) -> str:
    """The registry's error codes and messages from an error body, or ``""``; one short line."""
    try:
        doc = json.loads(body[:65536])
    except (ValueError, UnicodeDecodeError):
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for item in errors[:3]:
        if isinstance(item, dict):
            code, message = str(item.get("code", "")), str(item.get("message", ""))
            parts.append(": ".join(p for p in (code, message) if p))
    return _one_line("; ".join(p for p in parts if p))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def status_error(
    status: int, host: str, what: str, body: bytes = b"", reason: str = ""
) -> errdefs.ErrdefsError:
    """The error for a registry's non-success ``status`` about ``what``."""
    detail = registry_detail(body)
    suffix = f" ({detail})" if detail else ""
    head = f"registry {host}: {what}"
    if status == 404:
        return errdefs.NotFound(f"{head} not found{suffix}")
    if status == 401:
        return errdefs.Unauthenticated(f"{head}: authentication required{suffix}")
    if status == 403:
        return errdefs.PermissionDenied(f"{head}: access denied{suffix}")
    if status == 429:
        return errdefs.Unavailable(f"{head}: too many requests{suffix}")
    if status == 416:
        return errdefs.OutOfRange(f"{head}: range not satisfiable{suffix}")
    answered = f"{head}: answered {status} {_one_line(reason)}".rstrip() + suffix
    if status >= 500 or status == 408:
        return errdefs.Unavailable(answered)
    if status in (405, 501):
        return errdefs.NotImplemented(answered)
    if status == 409:
        return errdefs.Conflict(answered)
    return errdefs.InvalidArgument(answered)


def transport_error(host: str, what: str, cause: BaseException) -> errdefs.Unavailable:
    """A connection that failed or broke while asking ``host`` about ``what``."""
    return errdefs.Unavailable(f"registry {host}: {what}: {_cause(cause)}")


def _cause(cause: BaseException) -> str:
    if isinstance(cause, aiohttp.ClientConnectorError):
        # Its own text repeats the SSL context's repr; say what failed.
        os_error = cause.os_error
        why = os_error.strerror or str(os_error) if isinstance(os_error, OSError) else ""
        return _one_line(f"cannot connect to {cause.host}:{cause.port}: {why}".rstrip(": "))
    if isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(cause, aiohttp.ClientPayloadError):
        return "connection dropped mid-answer"
    return _one_line(str(cause)) or type(cause).__name__
