"""The NATS service API (ADR-32): ``$SRV.PING|INFO|STATS`` answered, and asked.

The wire shapes are nats.py's own ``nats.micro`` types, so any NATS tool (``nats micro ls``)
sees Flotilla services. We do not use ``nats.micro.Service`` itself for serving: it runs handlers
one at a time per endpoint, answers unknown errors with ``repr()`` and stops without draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.micro.service import (
    EndpointInfo,
    EndpointStats,
    ServiceInfo,
    ServicePing,
    ServiceStats,
    ServiceVerb,
    control_subject,
)
from nats.nuid import NUID

from flotilla.common.bus.client import Bus

__all__ = ["QUEUE_GROUP", "SERVICE_PREFIX", "Discovery", "EndpointStat", "discover"]

SERVICE_PREFIX: Final = "flotilla-"
QUEUE_GROUP: Final = "q"
"""ADR-32's default queue group, which every endpoint joins: replicas share the load."""


@dataclass
class EndpointStat:
    """Counters of one endpoint, as ADR-32 STATS reports them."""

    name: str
    subject: str
    num_requests: int = 0
    num_errors: int = 0
    processing_time_ns: int = 0
    last_error: str | None = None

    def record(self, seconds: float, error: str | None) -> None:
        """Count one handled request."""
        self.num_requests += 1
        self.processing_time_ns += int(seconds * 1e9)
        if error is not None:
            self.num_errors += 1
            self.last_error = error

    def to_stats(self) -> EndpointStats:
        """nats.micro's wire shape."""
        average = self.processing_time_ns // self.num_requests if self.num_requests else 0
        return EndpointStats(
            name=self.name,
            subject=self.subject,
            queue_group=QUEUE_GROUP,
            num_requests=self.num_requests,
            num_errors=self.num_errors,
            processing_time=self.processing_time_ns,
            average_processing_time=average,
            last_error=self.last_error,
        )


class Discovery:
    """Answers ``$SRV.<VERB>``, ``$SRV.<VERB>.<name>`` and ``$SRV.<VERB>.<name>.<id>``."""

    def __init__(self, bus: Bus, service: str, version: str, description: str) -> None:
        self._bus = bus
        self.id = NUID().next().decode()
        self.name = SERVICE_PREFIX + service
        self.version = version
        self.description = description
        self.metadata = {"node": bus.node, "service": service, "pid": str(os.getpid())}
        self.started = datetime.now(UTC).replace(tzinfo=None)
        self._endpoints: list[EndpointStat] = []
        self._subscriptions: list[Subscription] = []

    async def start(self, endpoints: list[EndpointStat]) -> None:
        """Subscribe the discovery subjects."""
        self._endpoints = endpoints
        handlers = {
            ServiceVerb.PING: self._ping,
            ServiceVerb.INFO: self._info,
            ServiceVerb.STATS: self._stats,
        }
        for verb, handler in handlers.items():
            for name, id_ in ((None, None), (self.name, None), (self.name, self.id)):
                subject = control_subject(verb, name=name, id=id_)
                self._subscriptions.append(await self._bus.nc.subscribe(subject, cb=handler))

    async def stop(self) -> None:
        """Stop answering discovery."""
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subscriptions = []

    async def _respond(self, msg: Msg, body: dict[str, Any]) -> None:
        if msg.reply:
            await self._bus.nc.publish(msg.reply, json.dumps(body).encode())

    async def _ping(self, msg: Msg) -> None:
        ping = ServicePing(id=self.id, name=self.name, version=self.version, metadata=self.metadata)
        await self._respond(msg, ping.to_dict())

    async def _info(self, msg: Msg) -> None:
        endpoints = [
            EndpointInfo(name=e.name, subject=e.subject, queue_group=QUEUE_GROUP)
            for e in self._endpoints
        ]
        info = ServiceInfo(
            id=self.id,
            name=self.name,
            version=self.version,
            description=self.description,
            metadata=self.metadata,
            endpoints=endpoints,
        )
        await self._respond(msg, info.to_dict())

    async def _stats(self, msg: Msg) -> None:
        stats = ServiceStats(
            id=self.id,
            name=self.name,
            version=self.version,
            metadata=self.metadata,
            started=self.started,
            endpoints=[e.to_stats() for e in self._endpoints],
        )
        await self._respond(msg, stats.to_dict())


async def discover(bus: Bus, verb: ServiceVerb, wait: float = 0.5) -> list[dict[str, Any]]:
    """Ask every service ``$SRV.<verb>`` and collect the answers that arrive within ``wait``."""
    inbox = bus.nc.new_inbox()
    answers: list[dict[str, Any]] = []

    async def collect(msg: Msg) -> None:
        with contextlib.suppress(ValueError):
            answers.append(json.loads(msg.data))

    sub = await bus.nc.subscribe(inbox, cb=collect)
    try:
        await bus.nc.publish(control_subject(verb), b"", reply=inbox)
        await bus.flush()
        await asyncio.sleep(wait)
    finally:
        await sub.unsubscribe()
    return [a for a in answers if str(a.get("name", "")).startswith(SERVICE_PREFIX)]
