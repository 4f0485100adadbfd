"""A tiny HTTP client for talking to the local registry (stdlib only, run in a thread)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Response", "request"]

# Never route 127.0.0.1 through a proxy picked up from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Response:
    """Status, headers (lower-cased names) and body of an HTTP response."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def _request_sync(
    method: str, url: str, headers: Mapping[str, str], socket_timeout: float
) -> Response:
    req = urllib.request.Request(url, method=method, headers=dict(headers))
    try:
        with _OPENER.open(req, timeout=socket_timeout) as resp:
            return Response(resp.status, _lower(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, _lower(error.headers.items()), error.read())


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


async def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    socket_timeout: float = 10.0,
) -> Response:
    """Send one request; 4xx and 5xx come back as responses, transport errors raise OSError."""
    return await asyncio.to_thread(_request_sync, method, url, headers or {}, socket_timeout)
