"""``flotilla up`` for real: embedded NATS, five service processes, restarts, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVICES = ("content", "snapshots", "images", "tasks", "gateway")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@dataclass
class Stack:
    process: asyncio.subprocess.Process
    env: dict[str, str]
    lines: list[str]
    log: Path

    async def flotilla(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flotilla.cli", *args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return out.decode()

    async def wait_for_line(self, text: str, timeout: float = 60) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                assert line, f"flotilla up exited; output so far: {self.lines}"
                self.lines.append(line.rstrip())
                if text in line:
                    return line

    def pids(self) -> dict[str, int]:
        table = [
            line.split() for line in self.lines if line.split()[:1] and line.split()[0] in SERVICES
        ]
        return {row[0]: int(row[2]) for row in table if len(row) >= 3 and row[2].isdigit()}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    env = dict(os.environ)
    env.update(
        FLOTILLA_ROOT=str(tmp_path / "root"),
        FLOTILLA_STATE=str(tmp_path / "state"),
        FLOTILLA_NATS__PORT=str(free_port()),
        FLOTILLA_METRICS__LISTEN="127.0.0.1:0",
        FLOTILLA_NODE_ID="node-a",
    )
    with (tmp_path / "up.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flotilla.cli", "up", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=log, start_new_session=True,
        )  # fmt: skip
    stack = Stack(process, env, [], tmp_path / "up.log")
    try:
        yield stack
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_up_runs_everything_healthy_and_stops_clean(stack: Stack) -> None:
    nats_line = await stack.wait_for_line("nats: nats://")
    nats_pid = int(nats_line.rsplit("pid ", 1)[1].rstrip(")\n"))
    await stack.wait_for_line("all 5 services healthy")
    metrics_line = await stack.wait_for_line("metrics: http://")
    await stack.wait_for_line("flotilla is up")
    pids = stack.pids()
    assert set(pids) == set(SERVICES)

    status = await stack.flotilla("status")
    rows = [line.split() for line in status.splitlines()[1:]]
    assert sorted(row[0] for row in rows) == sorted(SERVICES)
    assert all(row[1] == "node-a" and row[4] == "healthy" for row in rows)

    host_port = metrics_line.split("http://", 1)[1].split("/", 1)[0]
    reader, writer = await asyncio.open_connection(*host_port.split(":"))
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    body = (await reader.read()).decode()
    writer.close()
    assert "200 OK" in body
    assert (
        'flotilla_requests_total{endpoint="metrics"'
        in body.replace('node="node-a",', "").replace('service="content",', "")
        or "flotilla_requests" in body
    )

    stack.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(stack.process.wait(), 30) == 0
    for pid in [*pids.values(), nats_pid]:
        assert not alive(pid), f"pid {pid} outlived flotilla up"


async def test_crashed_service_is_restarted(stack: Stack) -> None:
    await stack.wait_for_line("flotilla is up")
    old = stack.pids()["images"]
    os.kill(old, signal.SIGKILL)
    await stack.wait_for_line("images exited with status -9; restarting")
    async with asyncio.timeout(30):
        while True:
            status = await stack.flotilla("status")
            row = next(r.split() for r in status.splitlines() if r.startswith("images"))
            if row[4] == "healthy" and row[7] != str(old):
                break
            await asyncio.sleep(0.3)
    stack.process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(stack.process.wait(), 30) == 0


async def test_status_without_a_bus_says_unavailable(tmp_path: Path) -> None:
    env = dict(os.environ, FLOTILLA_NATS__URLS=f"nats://127.0.0.1:{free_port()}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flotilla.cli", "status", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert err.decode().startswith("flotilla: Unavailable: cannot reach NATS")


async def test_ctrl_c_on_the_terminal_stops_everything_in_order(stack: Stack) -> None:
    await stack.wait_for_line("flotilla is up")
    pids = stack.pids()
    os.killpg(stack.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert await asyncio.wait_for(stack.process.wait(), 30) == 0
    log = stack.log.read_text()
    assert "ignored SIGTERM" not in log  # every service drained before NATS went away
    assert "Traceback" not in log
    for pid in pids.values():
        assert not alive(pid)
