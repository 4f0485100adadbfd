"""What ``flotilla up`` keeps running: a service process, or the embedded nats-server.

Both are a :class:`Unit`: started, waited on, stopped, started again. ``EmbeddedNats`` is one as
it is; :class:`ServiceUnit` runs ``python -m flotilla.<service>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

from flotilla.common import errdefs
from flotilla.common.process import child_command, child_options

__all__ = ["ServiceUnit", "Unit", "service_command"]

log = logging.getLogger(__name__)


class Unit(Protocol):
    """A process that can be started, waited on, stopped, and started again."""

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        ...

    async def start(self) -> None:
        """Start the process; a failed start leaves nothing running."""
        ...

    async def wait(self) -> int:
        """Wait for the running process to exit; its status (negative: the signal)."""
        ...

    async def stop(self) -> None:
        """Stop the process, politely first; return once it is reaped."""
        ...


def service_command(service: str) -> Sequence[str]:
    """How a service is run: ``python -m flotilla.<service>`` with this interpreter."""
    return (sys.executable, "-m", f"flotilla.{service}")


class ServiceUnit:
    """One service process.

    Args:
        service: the service's name, for logs.
        argv: the command line.
        env: the whole environment of the process.
        grace: seconds between SIGTERM and SIGKILL when stopping.
    """

    def __init__(
        self, service: str, argv: Sequence[str], env: Mapping[str, str], grace: float = 10.0
    ) -> None:
        self.service = service
        self.argv = tuple(argv)
        self.env = dict(env)
        self.grace = grace
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Start the process (it dies with this one, and has its own session)."""
        self._process = await asyncio.create_subprocess_exec(
            *child_command(self.argv), env=self.env, **child_options()
        )

    async def wait(self) -> int:
        """Wait for the process to exit; its status."""
        if self._process is None:
            raise errdefs.FailedPrecondition(f"{self.service} is not running")
        return await self._process.wait()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period; return once reaped."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), self.grace)
        except TimeoutError:
            log.warning("service ignored SIGTERM; killing", extra={"service": self.service})
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
