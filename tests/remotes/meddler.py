"""A proxy in front of a real registry that answers like other registries do.

Knobs: leave ``Docker-Content-Digest`` out of manifest answers, refuse ``HEAD`` on manifests
with 405, or answer the next requests with an error status. Everything else is forwarded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from flotilla.testkit.token_server import serve

_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclass
class Meddler:
    """The proxy's knobs and what it saw (``(method, path)`` of every request)."""

    upstream: str
    port: int = 0
    strip_digest: bool = False
    no_head: bool = False
    failures: list[int] = field(default_factory=list)  # statuses for the next requests
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every request."""
        self.seen.append((request.method, request.path_qs))
        if self.failures:
            return web.Response(status=self.failures.pop(0), reason="Meddled")
        manifest = "/manifests/" in request.path
        if manifest and self.no_head and request.method == "HEAD":
            return web.Response(status=405)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=await request.read() if request.body_exists else None,
                allow_redirects=False,
            ) as upstream,
        ):
            body = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
            if manifest and self.strip_digest:
                out.pop("Docker-Content-Digest", None)
            if request.method != "HEAD":
                return web.Response(status=upstream.status, headers=out, body=body)
            head = web.StreamResponse(status=upstream.status, headers=out)
            if upstream.content_length is not None:
                head.content_length = upstream.content_length  # what GET would send
            return head


@asynccontextmanager
async def meddler(upstream: str) -> AsyncIterator[Meddler]:
    """A meddling proxy in front of ``upstream`` (``http://127.0.0.1:PORT``)."""
    proxy = Meddler(upstream)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    async with serve(app) as port:
        proxy.port = port
        yield proxy
