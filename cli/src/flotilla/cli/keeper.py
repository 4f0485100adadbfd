"""Keeping units running: restart on exit with backoff, and a stop that no restart can outrun.

Every start, first or again, happens under one lock, and a restart checks ``halted`` under that
lock after its backoff sleep. :meth:`Keeper.halt` sets ``halted`` under the same lock (so a start
in progress finishes first and its process is known), then cancels the watchers and waits for
them. After ``halt`` returns nothing will start again, and every process that was started is in
``kept``, to be stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flotilla.cli.units import Unit
from flotilla.common import errdefs

__all__ = ["Backoff", "Kept", "Keeper"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """When to restart: ``first`` doubling per failure in a row, up to ``cap``.

    A unit that ran ``stable_after`` seconds counts as healthy: its next delay is ``first``.
    """

    first: float = 0.5
    cap: float = 30.0
    stable_after: float = 60.0

    def delay(self, failures: int) -> float:
        """The wait before the next start after ``failures`` failures in a row."""
        return min(self.first * 2.0 ** max(failures - 1, 0), self.cap)


@dataclass(eq=False)
class Kept:
    """A unit under the keeper's care, and its history."""

    name: str
    unit: Unit
    started: float = 0.0
    failures: int = 0
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Keeper:
    """Starts units and restarts them when they exit, until halted.

    Args:
        say: prints a line for the operator (exits, restarts).
        backoff: the restart policy.
        on_restart: called after every successful restart.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        backoff: Backoff | None = None,
        on_restart: Callable[[Kept], None] | None = None,
    ) -> None:
        self.say = say
        self.backoff = backoff or Backoff()
        self.on_restart = on_restart
        self.kept: dict[str, Kept] = {}
        self.halted = False
        self._lock = asyncio.Lock()

    async def start(self, name: str, unit: Unit) -> Kept:
        """Start ``unit`` and keep it running; Canceled once halted."""
        kept = Kept(name, unit)
        async with self._lock:
            if self.halted:
                raise errdefs.Canceled(f"{name}: not started, the stack is stopping")
            await unit.start()
            kept.started = time.monotonic()
            self.kept[name] = kept
            kept.watcher = asyncio.create_task(self._watch(kept), name=f"keep-{name}")
        return kept

    async def halt(self) -> None:
        """Start nothing more: wait out a start in progress, cancel pending restarts."""
        async with self._lock:
            self.halted = True
        watchers = [k.watcher for k in self.kept.values() if k.watcher is not None]
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    async def _watch(self, kept: Kept) -> None:
        while True:
            code = await kept.unit.wait()
            ran = time.monotonic() - kept.started
            kept.failures = 0 if ran > self.backoff.stable_after else kept.failures + 1
            delay = self.backoff.delay(kept.failures)
            log.warning("exited", extra={"service": kept.name, "code": code, "restart_in": delay})
            self.say(f"{kept.name} exited with status {code}; restarting in {delay:.1f}s")
            if not await self._restart(kept, delay):
                return

    async def _restart(self, kept: Kept, delay: float) -> bool:
        """Start ``kept`` again after ``delay``, retrying failed starts; False once halted."""
        while True:
            await asyncio.sleep(delay)
            async with self._lock:
                if self.halted:
                    return False
                try:
                    await kept.unit.start()
                except (errdefs.ErrdefsError, OSError) as err:
                    kept.failures += 1
                    delay = self.backoff.delay(kept.failures)
                    log.warning("start failed", extra={"service": kept.name, "error": str(err)})
                    self.say(f"{kept.name} did not start: {err}; retrying in {delay:.1f}s")
                    continue
                kept.started = time.monotonic()
                kept.restarts += 1
            self.say(f"{kept.name} restarted (pid {kept.unit.pid})")
            if self.on_restart is not None:
                self.on_restart(kept)
            return True

    async def stop(self, names: list[str]) -> None:
        """Stop the named units together (after :meth:`halt`)."""
        await asyncio.gather(*(self.kept[n].unit.stop() for n in names if n in self.kept))
