"""Subprocess plumbing shared by the fixtures: run a command, run a daemon, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = [
    "CommandError",
    "free_port",
    "kill_processes_mentioning",
    "run",
    "start_daemon",
    "stop_process",
    "wait_until",
]

Process = asyncio.subprocess.Process


class CommandError(RuntimeError):
    """A command exited with a non-zero status; carries its argv, status and stderr."""

    def __init__(self, argv: tuple[str, ...], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(argv)} exited with {returncode}: {stderr.strip()}")


async def run(*argv: str, timeout: float | None = None) -> str:
    """Run ``argv`` to completion and return its stdout.

    Raises:
        CommandError: the command exited with a non-zero status.
        TimeoutError: it ran longer than ``timeout`` seconds (it is killed first).
    """
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except BaseException:
        # Timeout, cancellation or Ctrl-C: never leave the child behind.
        await _kill_and_reap(proc)
        raise
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode or 0, err.decode(errors="replace"))
    return out.decode(errors="replace")


async def start_daemon(argv: list[str], log_path: Path) -> Process:
    """Start a long-lived process in its own session, logging to ``log_path``.

    Its own session keeps a terminal's Ctrl-C away from it: the owner stops it, in order.
    """
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def stop_process(proc: Process, grace: float = 10.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; kills at once if cancelled."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        await _kill_and_reap(proc)
    except BaseException:
        _kill(proc)
        raise


async def _kill_and_reap(proc: Process) -> None:
    _kill(proc)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), 5.0)


def _kill(proc: Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    proc: Process | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``check`` until it returns True.

    Raises:
        RuntimeError: ``proc`` exited before ``check`` passed.
        TimeoutError: ``check`` did not pass within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if proc is not None and proc.returncode is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        if loop.time() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        await asyncio.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kill_processes_mentioning(needle: str) -> list[int]:
    """SIGKILL every process whose command line contains ``needle``; returns their pids.

    Used for processes a daemon leaves detached on purpose, e.g. containerd's shims.
    """
    killed: list[int] = []
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed
