"""``flotilla status``: the services on the bus, their node, version, uptime, health and subjects.

Restart counts come from ``flotilla up``: it answers discovery for its embedded nats-server as
service ``nats`` and puts there how often it restarted each service (see ``nats_service``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from nats.micro.service import ServiceVerb

from flotilla.cli.health import services_on
from flotilla.cli.nats_service import NATS, parse_restarts
from flotilla.common.bus import Bus

__all__ = ["format_status", "status_rows", "summarise_subjects"]

_COLUMNS = (
    "SERVICE", "NODE", "VERSION", "UPTIME", "HEALTH", "REQUESTS", "ERRORS", "PID", "RESTARTS",
    "SERVES",
)  # fmt: skip


def summarise_subjects(subjects: Iterable[str]) -> str:
    """Subjects per prefix: ``a.b.x, a.b.y`` -> ``a.b.*``; a prefix with one subject stays whole."""
    groups: dict[str, list[str]] = {}
    for subject in subjects:
        groups.setdefault(subject.rpartition(".")[0], []).append(subject)
    return ", ".join(f"{p}.*" if len(s) > 1 else s[0] for p, s in groups.items()) or "-"


def _uptime(started: str, now: datetime) -> str:
    try:
        begun = datetime.strptime(started, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return "?"
    seconds = int((now - begun).total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s"


def _serves(stats: dict[str, Any]) -> str:
    meta = stats.get("metadata", {})
    if meta.get("service") == NATS and meta.get("url"):
        return str(meta["url"])
    return summarise_subjects(e.get("subject", "?") for e in stats.get("endpoints") or [])


def _row(
    stats: dict[str, Any], now: datetime, restarts: dict[tuple[str, str], str]
) -> tuple[str, ...]:
    meta = stats.get("metadata", {})
    endpoints = stats.get("endpoints") or []
    service, node = meta.get("service", stats.get("name", "?")), meta.get("node", "?")
    return (
        service,
        node,
        stats.get("version", "?"),
        _uptime(stats.get("started", ""), now),
        "healthy",
        str(sum(e.get("num_requests", 0) for e in endpoints)),
        str(sum(e.get("num_errors", 0) for e in endpoints)),
        meta.get("pid", "?"),
        restarts.get((node, service), "-"),
        _serves(stats),
    )


def _restarts(answers: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    counts: dict[tuple[str, str], str] = {}
    for meta in (a.get("metadata", {}) for a in answers):
        if meta.get("service") == NATS:
            node = meta.get("node", "?")
            counts.update({(node, name): n for name, n in parse_restarts(meta).items()})
    return counts


async def status_rows(bus: Bus, expected: tuple[str, ...]) -> list[tuple[str, ...]]:
    """One row per answering instance, plus a ``down`` row per expected service that is silent."""
    now = datetime.now(UTC)
    answers = await services_on(bus, None, ServiceVerb.STATS)
    restarts = _restarts(answers)
    rows = sorted(_row(s, now, restarts) for s in answers)
    seen = {row[0] for row in rows}
    down = ("-", "-", "-", "down", "-", "-", "-", "-", "-")
    rows += [(name, *down) for name in expected if name not in seen]
    return rows


def format_status(rows: list[tuple[str, ...]]) -> str:
    """The rows as an aligned table."""
    table = [_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table)
    return "\n".join(line.rstrip() for line in lines)
