"""Subprocess plumbing shared by the fixtures: run a command, run a daemon, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from flotilla.testkit.programs import MissingProgram

__all__ = [
    "CommandError",
    "alive",
    "free_port",
    "kill",
    "processes",
    "run",
    "start_daemon",
    "stop_process",
    "wait_gone",
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


async def run(*argv: str) -> str:
    """Run ``argv`` to completion and return its stdout.

    Bound it with ``asyncio.timeout()``: on cancellation the child is killed.

    Raises:
        CommandError: the command exited with a non-zero status.
        MissingProgram: ``argv[0]`` is not installed.
    """
    with _missing_as_one_line(argv[0]):
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    try:
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

    Raises:
        MissingProgram: ``argv[0]`` is not installed.
    """
    with log_path.open("ab") as log, _missing_as_one_line(argv[0]):
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextlib.contextmanager
def _missing_as_one_line(program: str) -> Iterator[None]:
    """Turn exec's ``FileNotFoundError`` into a ``MissingProgram`` that names ``program``."""
    try:
        yield
    except FileNotFoundError as error:
        if error.filename not in (None, program):
            raise  # something else is missing (a working directory, say): keep it as it is
        raise MissingProgram([program]) from None


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
    what: str,
    proc: Process | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``check`` until it returns True; bound it with ``asyncio.timeout()``.

    Raises:
        RuntimeError: ``proc`` exited before ``check`` passed.
    """
    while not await check():
        if proc is not None and proc.returncode is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        await asyncio.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def processes() -> Iterator[tuple[int, list[str]]]:
    """``(pid, argv)`` of every process we can see, except this one."""
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # it exited meanwhile, or is not ours to read
            continue
        yield int(entry.name), raw.decode(errors="replace").split("\0")[:-1]


def kill(pid: int) -> None:
    """SIGKILL ``pid`` if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pids: list[int]) -> None:
    """Wait until none of ``pids`` runs (zombies count as gone); bound it with a timeout."""

    async def gone() -> bool:
        return not any(_running(pid) for pid in pids)

    await wait_until(gone, what="exit", interval=0.02)
