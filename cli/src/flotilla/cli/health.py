"""Asking the bus which Flotilla services answer, and waiting until they all do."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from nats.micro.service import ServiceVerb

from flotilla.common import errdefs
from flotilla.common.bus import Bus, discover

__all__ = ["services_on", "wait_healthy"]


async def services_on(bus: Bus, node: str | None, verb: ServiceVerb) -> list[dict[str, Any]]:
    """Every Flotilla service instance answering ``verb``, on ``node`` or on all nodes."""
    answers = await discover(bus, verb, wait=0.3)
    return [a for a in answers if node is None or a.get("metadata", {}).get("node") == node]


async def wait_healthy(
    bus: Bus, services: Iterable[str], node: str, timeout: float
) -> dict[str, dict[str, Any]]:
    """Wait until every service in ``services`` answers a ping from ``node``; return the pings."""
    wanted = set(services)
    found: dict[str, dict[str, Any]] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                pings = await services_on(bus, node, ServiceVerb.PING)
                found = {a["metadata"]["service"]: a for a in pings}
                if wanted <= found.keys():
                    return found
                await asyncio.sleep(0.2)
    except TimeoutError:
        missing = ", ".join(sorted(wanted - found.keys()))
        raise errdefs.Unavailable(f"not healthy within {timeout:g}s: {missing}") from None
