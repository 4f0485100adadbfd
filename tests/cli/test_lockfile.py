"""The state directory's lock: one ``flotilla up`` at a time, never a stale lock after a crash."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from flotilla.cli.lockfile import LOCK_NAME, hold_stack_lock
from flotilla.common import errdefs

_HOLD = """
import sys, time
from pathlib import Path
from flotilla.cli.lockfile import hold_stack_lock
with hold_stack_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


async def _holder(state: Path) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLD, str(state), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"held\n"
    return process


async def test_a_held_lock_is_refused_naming_the_holder_and_freed_by_its_death(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    holder = await _holder(state)
    try:
        assert (state / LOCK_NAME).read_text() == f"{holder.pid}\n"
        refused = pytest.raises(errdefs.AlreadyExists, match=rf"\(pid {holder.pid}, lock ")
        with refused, hold_stack_lock(state):
            pass
        holder.send_signal(signal.SIGKILL)  # a crash: no clean-up runs
        await asyncio.wait_for(holder.wait(), 30)
        with hold_stack_lock(state) as path:
            assert path.read_text().strip().isdigit()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


def test_released_on_exit_and_taken_again(tmp_path: Path) -> None:
    # A second open file is refused even in the same process.
    with (
        hold_stack_lock(tmp_path) as path,
        pytest.raises(errdefs.AlreadyExists),
        hold_stack_lock(tmp_path),
    ):
        pass
    assert path.read_text() == ""
    with hold_stack_lock(tmp_path):
        pass


def test_a_state_directory_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    refused = pytest.raises(errdefs.FailedPrecondition, match=r"state directory .*/file/state: ")
    with refused, hold_stack_lock(tmp_path / "file" / "state"):
        pass
