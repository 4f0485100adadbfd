"""``flotilla up`` for real: embedded NATS, five service processes, restarts, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flotilla.common import digests
from flotilla.testkit import alive, free_port

SERVICES = ("content", "snapshots", "images", "tasks", "gateway")


def processes_with(variable: str) -> list[int]:
    """Every live process whose environment holds ``variable`` (``NAME=value``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if variable.encode() in environ and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@dataclass
class Stack:
    process: asyncio.subprocess.Process
    env: dict[str, str]
    lines: list[str]
    log: Path

    async def run(self, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flotilla.cli", *args, env=self.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def flotilla(self, *args: str, stdin: bytes = b"") -> str:
        code, out, err = await self.run(*args, stdin=stdin)
        assert code == 0, err
        return out

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

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 30)


StartUp = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def start_up(tmp_path: Path) -> AsyncIterator[StartUp]:
    """Starts ``flotilla up`` in its own state directory; ``start_up(same_as=stack)`` shares one."""
    started: list[asyncio.subprocess.Process] = []

    async def start(same_as: Stack | None = None, **overrides: str) -> Stack:
        env = dict(os.environ)
        env.update(
            FLOTILLA_ROOT=str(tmp_path / "root"),
            FLOTILLA_STATE=str(tmp_path / "state"),
            FLOTILLA_NATS__PORT=str(free_port()),
            FLOTILLA_METRICS__LISTEN="127.0.0.1:0",
            FLOTILLA_NODE_ID="node-a",
        )
        env.update(overrides)
        if same_as is not None:
            env = same_as.env
        log = tmp_path / f"up-{len(started)}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flotilla.cli", "up", env=env,
                stdout=asyncio.subprocess.PIPE, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        started.append(process)
        return Stack(process, env, [], log)

    yield start
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def stack(start_up: StartUp) -> Stack:
    return await start_up()


async def status_table(stack: Stack) -> dict[str, list[str]] | None:
    """``flotilla status`` as ``{service: row}``; None while NATS cannot be reached."""
    code, out, err = await stack.run("status")
    if code != 0:
        assert "Unavailable: cannot reach NATS" in err
        return None
    return {row.split()[0]: row.split() for row in out.splitlines()[1:]}


async def test_up_runs_everything_healthy_and_stops_clean(stack: Stack) -> None:
    nats_line = await stack.wait_for_line("nats:    nats://")
    nats_pid = int(nats_line.rsplit("pid ", 1)[1].rstrip(")\n"))
    await stack.wait_for_line("all 5 services healthy")
    metrics_line = await stack.wait_for_line("metrics: http://")
    await stack.wait_for_line("flotilla is up")
    pids = stack.pids()
    assert set(pids) == set(SERVICES)

    rows = await status_table(stack)
    assert rows is not None
    assert sorted(rows) == sorted([*SERVICES, "nats"])
    assert all(row[1] == "node-a" and row[4] == "healthy" for row in rows.values())
    assert rows["nats"][7] == str(nats_pid)
    assert rows["nats"][8] == "0"
    assert rows["nats"][9] == nats_line.split()[1]  # its URL
    assert all(rows[name][7] == str(pid) and rows[name][8] == "0" for name, pid in pids.items())

    host_port = metrics_line.split("http://", 1)[1].split("/", 1)[0]
    reader, writer = await asyncio.open_connection(*host_port.split(":"))
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    body = (await reader.read()).decode()
    writer.close()
    assert "200 OK" in body
    assert "flotilla_requests" in body

    assert await stack.stop() == 0
    for pid in [*pids.values(), nats_pid]:
        assert not alive(pid), f"pid {pid} outlived flotilla up"


async def test_up_says_what_each_service_serves_and_what_to_try(stack: Stack) -> None:
    await stack.wait_for_line("flotilla is up")
    table = {line.split()[0]: line.split() for line in stack.lines if line.split()[:1]}
    # content is node-local: its subjects name the node, not the cluster-wide prefix.
    assert table["content"][3:] == ["flotilla.v1.node.node-a.content.*"]
    assert table["gateway"][3:] == ["flotilla.v1.node.node-a.gateway.metrics"]
    assert not any("flotilla.v1.content" in line for line in stack.lines)
    state = stack.env["FLOTILLA_STATE"]
    assert f"gateway: {state}/flotilla.sock (not served yet)" in stack.lines
    tries = stack.lines[stack.lines.index(next(x for x in stack.lines if x.startswith("try:"))) :]
    assert tries[0].endswith("flotilla status")
    assert tries[1].endswith("flotilla content ls")
    assert tries[2].startswith("         curl -s http://127.0.0.1:")
    assert await stack.stop() == 0


async def test_crashed_service_is_restarted(stack: Stack) -> None:
    await stack.wait_for_line("flotilla is up")
    old = stack.pids()["images"]
    os.kill(old, signal.SIGKILL)
    await stack.wait_for_line("images exited with status -9; restarting in 0.5s")
    await stack.wait_for_line("images restarted (pid ")
    async with asyncio.timeout(30):
        while True:
            rows = await status_table(stack)
            if rows and rows["images"][4] == "healthy" and rows["images"][7] != str(old):
                break
            await asyncio.sleep(0.3)
    assert rows["images"][8] == "1"
    assert await stack.stop(signal.SIGINT) == 0


async def test_a_killed_nats_server_is_restarted_and_the_stack_recovers(stack: Stack) -> None:
    nats_line = await stack.wait_for_line("nats:    nats://")
    old = int(nats_line.rsplit("pid ", 1)[1].rstrip(")\n"))
    await stack.wait_for_line("flotilla is up")
    os.kill(old, signal.SIGKILL)
    await stack.wait_for_line("nats exited with status -9; restarting in 0.5s")
    new = int((await stack.wait_for_line("nats restarted (pid ")).split("pid ")[1].rstrip(")\n"))
    assert new != old
    assert alive(new)
    async with asyncio.timeout(60):
        while True:
            rows = await status_table(stack)
            everything = rows and sorted(rows) == sorted([*SERVICES, "nats"])
            if everything and all(row[4] == "healthy" for row in rows.values()):
                break
            await asyncio.sleep(0.3)
    assert rows["nats"][7] == str(new)
    assert rows["nats"][8] == "1"
    assert rows["nats"][9] == nats_line.split()[1]  # the same URL: the same port

    data = os.urandom(300_000)
    digest = digests.digest_of(data)
    out = await stack.flotilla(
        "content", "ingest", "after-nats", "--expected-digest", digest, stdin=data
    )
    assert out.strip() == digest
    assert digest in await stack.flotilla("content", "ls")
    assert await stack.stop() == 0
    assert not alive(new)


async def test_a_second_up_on_the_same_state_is_refused(start_up: StartUp) -> None:
    first = await start_up()
    await first.wait_for_line("flotilla is up")
    second = await start_up(same_as=first)
    code = await asyncio.wait_for(second.process.wait(), 20)
    assert code == 1
    assert second.process.stdout is not None
    assert await second.process.stdout.read() == b""  # started nothing
    err = second.log.read_text().strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("flotilla: AlreadyExists: flotilla up already runs on ")
    assert f"(pid {first.process.pid}," in err[0]
    rows = await status_table(first)
    assert rows is not None
    assert sorted(rows) == sorted([*SERVICES, "nats"])
    assert await first.stop() == 0


async def test_stopping_while_a_service_crash_loops_leaves_nothing(
    start_up: StartUp, tmp_path: Path
) -> None:
    (tmp_path / "not-a-directory").write_text("")  # content cannot open its store: it crashes
    stack = await start_up(FLOTILLA_ROOT=str(tmp_path / "not-a-directory"))
    await stack.wait_for_line("content exited with status 1; restarting in 0.5s")
    await stack.wait_for_line("content exited with status 1; restarting in 1.0s")
    assert await stack.stop() == 0  # at once, though start-up never finished
    assert stack.lines[-1:] != ["flotilla is up (Ctrl-C to stop)"]
    assert processes_with(f"FLOTILLA_STATE={stack.env['FLOTILLA_STATE']}") == []


async def test_status_without_a_bus_says_unavailable(tmp_path: Path) -> None:
    env = dict(os.environ, FLOTILLA_NATS__URLS=f"nats://127.0.0.1:{free_port()}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flotilla.cli", "status", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
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
