"""The keeper of ``flotilla up``: restarts with backoff, and a halt that no restart outruns."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from flotilla.cli.keeper import Backoff, Keeper
from flotilla.cli.units import ServiceUnit
from flotilla.testkit import alive


def test_backoff_doubles_from_half_a_second_to_thirty() -> None:
    delays = [Backoff().delay(failures) for failures in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert Backoff().delay(0) == 0.5  # the first failure after a healthy minute


class Lines:
    """What the keeper says, with a wait for the n-th line containing some text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()

    async def wait_for(self, text: str, count: int = 1) -> None:
        async with asyncio.timeout(30):
            while sum(text in line for line in self.lines) < count:
                self._changed.clear()
                await self._changed.wait()


class SlowStart(ServiceUnit):
    """A unit whose start takes a while before its process exists, as a real start can."""

    async def start(self) -> None:
        await asyncio.sleep(0.005)
        await super().start()


async def test_halting_while_a_unit_crash_loops_leaves_nothing(tmp_path: Path) -> None:
    pids, halting = tmp_path / "pids", tmp_path / "halting"
    # Each start records its pid and crashes at once, unless the halt has begun: then it stays.
    # A restart that slipped past the halt would be left running, never signalled.
    script = f"echo $$ >> {pids}; [ -e {halting} ] && exec sleep 60; exit 1"
    for attempt in range(12):
        halting.unlink(missing_ok=True)
        say = Lines()
        keeper = Keeper(say, Backoff(first=0.001, cap=0.001))
        unit = SlowStart("crashy", ["sh", "-c", script], os.environ, grace=5)
        await keeper.start("crashy", unit)
        await say.wait_for("crashy exited with status 1", count=3)
        await asyncio.sleep(attempt * 0.001)  # halt at a different point of the loop each time
        halting.touch()
        await keeper.halt()
        await keeper.stop(["crashy"])
        started = [int(pid) for pid in pids.read_text().split()]
        assert [pid for pid in started if alive(pid)] == [], f"attempt {attempt}"
    assert not any(t.get_name().startswith("keep-") for t in asyncio.all_tasks())


async def test_a_failed_restart_is_retried_with_backoff(tmp_path: Path) -> None:
    program = tmp_path / "program"
    program.write_text("#!/bin/sh\nexit 3\n")
    program.chmod(0o755)
    say = Lines()
    keeper = Keeper(say, Backoff(first=0.01, cap=0.05))
    kept = await keeper.start("flaky", ServiceUnit("flaky", [str(program)], os.environ))
    try:
        await say.wait_for("flaky exited with status 3; restarting in 0.0s")
        program.unlink()  # the next start fails: nothing to run
        await say.wait_for("flaky did not start: ")
        program.write_text("#!/bin/sh\nexec sleep 60\n")
        program.chmod(0o755)
        await say.wait_for("flaky restarted (pid ")
        assert kept.unit.pid is not None
        assert alive(kept.unit.pid)
        assert kept.restarts == 1
        assert kept.failures >= 2
    finally:
        await keeper.halt()
        await keeper.stop(["flaky"])
    assert kept.unit.pid is None or not alive(kept.unit.pid)
