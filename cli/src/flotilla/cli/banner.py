"""What ``flotilla up`` prints once the stack is up: what runs where, and what to try next."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from flotilla.cli.status import summarise_subjects

__all__ = ["GATEWAY_SOCKET", "cli_command", "labelled", "service_table", "where_and_next"]

GATEWAY_SOCKET: Final = "flotilla.sock"
_LABEL: Final = 9  # "metrics: " and friends, so the values line up


def labelled(label: str, value: str) -> str:
    """``label:`` padded so that values line up."""
    return f"{label + ':' if label else '':<{_LABEL}}{value}"


def service_table(
    services: Mapping[str, int | None], infos: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """One line per service: node, pid, and the subjects its ``$SRV.INFO`` lists."""
    rows = [("SERVICE", "NODE", "PID", "SERVES")]
    for name, pid in services.items():
        info = infos.get(name, {})
        node = str(info.get("metadata", {}).get("node", "?"))
        serves = summarise_subjects(e["subject"] for e in info.get("endpoints") or [])
        rows.append((name, node, str(pid or "-"), serves))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        f"{name:<{widths[0]}}  {node:<{widths[1]}}  {pid:>{widths[2]}}  {serves}"
        for name, node, pid, serves in rows
    ]


def cli_command(config_path: Path | None) -> str:
    """How to run ``flotilla`` against this stack from this shell."""
    beside = Path(sys.executable).parent / "flotilla"
    found = shutil.which("flotilla")
    command = "flotilla"
    if beside.exists() and (found is None or Path(found).resolve() != beside.resolve()):
        command = _short(beside)
    return f"{command} --config {config_path}" if config_path else command


def _short(path: Path) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)


def where_and_next(state_dir: Path, metrics_url: str | None, command: str) -> list[str]:
    """The gateway's socket, the metrics URL, and two or three commands to try."""
    socket = state_dir / GATEWAY_SOCKET
    lines = [labelled("metrics", metrics_url)] if metrics_url else []
    # The gateway serves its API there once it has one; say so rather than point at nothing.
    lines.append(labelled("gateway", f"{socket}{'' if socket.exists() else ' (not served yet)'}"))
    tries = [f"{command} status", f"{command} content ls"]
    if metrics_url:
        tries.append(f"curl -s {metrics_url}")
    lines += [labelled("try" if i == 0 else "", cmd) for i, cmd in enumerate(tries)]
    return lines
