"""``flotilla status``: the services on the bus, their node, version, uptime and health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nats.micro.service import ServiceVerb

from flotilla.cli.health import services_on
from flotilla.common.bus import Bus

__all__ = ["format_status", "status_rows"]

_COLUMNS = ("SERVICE", "NODE", "VERSION", "UPTIME", "HEALTH", "REQUESTS", "ERRORS", "PID")


def _uptime(started: str, now: datetime) -> str:
    try:
        begun = datetime.strptime(started, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return "?"
    seconds = int((now - begun).total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s"


def _row(stats: dict[str, Any], now: datetime) -> tuple[str, ...]:
    meta = stats.get("metadata", {})
    endpoints = stats.get("endpoints") or []
    return (
        meta.get("service", stats.get("name", "?")),
        meta.get("node", "?"),
        stats.get("version", "?"),
        _uptime(stats.get("started", ""), now),
        "healthy",
        str(sum(e.get("num_requests", 0) for e in endpoints)),
        str(sum(e.get("num_errors", 0) for e in endpoints)),
        meta.get("pid", "?"),
    )


async def status_rows(bus: Bus, expected: tuple[str, ...]) -> list[tuple[str, ...]]:
    """One row per answering instance, plus a ``down`` row per expected service that is silent."""
    now = datetime.now(UTC)
    rows = sorted(_row(s, now) for s in await services_on(bus, None, ServiceVerb.STATS))
    seen = {row[0] for row in rows}
    rows += [(name, "-", "-", "-", "down", "-", "-", "-") for name in expected if name not in seen]
    return rows


def format_status(rows: list[tuple[str, ...]]) -> str:
    """The rows as an aligned table."""
    table = [_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table)
    return "\n".join(line.rstrip() for line in lines)
