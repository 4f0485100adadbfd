"""The node's Prometheus endpoint: ``GET /metrics`` merges every local service's metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator

from nats.micro.service import ServiceVerb
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from flotilla.cli.health import services_on
from flotilla.common import errdefs
from flotilla.common.bus import Bus, Empty, metrics_method

__all__ = ["collect_metrics", "serve_metrics"]


class _Merged:
    """A collector yielding metric families merged across services (one HELP/TYPE each)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._families: dict[str, Metric] = {}
        for text in texts:
            for family in text_string_to_metric_families(text):
                merged = self._families.setdefault(family.name, family)
                if merged is not family:
                    merged.samples.extend(family.samples)

    def collect(self) -> Iterator[Metric]:
        yield from self._families.values()


async def collect_metrics(bus: Bus) -> str:
    """Every service of this node's metrics, as one Prometheus text document."""
    texts: list[str] = []
    for ping in await services_on(bus, bus.node, ServiceVerb.PING):
        method = metrics_method(ping["metadata"]["service"])
        with contextlib.suppress(errdefs.ErrdefsError):
            texts.append((await bus.call(method, Empty(), timeout=2)).text)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(texts))
    return generate_latest(registry).decode()


async def serve_metrics(bus: Bus, listen: str) -> asyncio.Server:
    """Serve ``GET /metrics`` on ``listen`` (``host:port``; port 0 picks one)."""
    host, _, port = listen.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readline()
            path = request.split()[1] if len(request.split()) > 1 else b""
            if path == b"/metrics":
                body, status = (await collect_metrics(bus)).encode(), "200 OK"
            else:
                body, status = b"not found\n", "404 Not Found"
            head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
            writer.write(body)
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, host or "127.0.0.1", int(port))
