"""A local, plain-http distribution v2 registry (Debian's ``docker-registry``).

Usage::

    async with local_registry() as reg:
        await push_image(image, reg.host)
        digest = await reg.manifest_digest("busybox", "latest")
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from flotilla.testkit import _http
from flotilla.testkit._proc import Process, free_port, start_daemon, stop_process, wait_until
from flotilla.testkit.oci import MANIFEST_ACCEPT
from flotilla.testkit.programs import require

__all__ = ["LocalRegistry", "local_registry", "registry_config"]

_START_ATTEMPTS = 3  # the free port may be taken between probing and binding


@dataclass(frozen=True)
class LocalRegistry:
    """A running registry on 127.0.0.1.

    Attributes:
        directory: Holds ``config.yml``, the ``storage/`` root and the log.
        port: Its TCP port.
        process: The registry process.
    """

    directory: Path
    port: int
    process: Process

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the host part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    async def manifest_digest(self, repo: str, reference: str) -> str:
        """The ``Docker-Content-Digest`` the registry reports for ``repo:reference``.

        Raises:
            LookupError: The registry does not have that manifest.
        """
        url = f"{self.url}/v2/{repo}/manifests/{reference}"
        resp = await _http.request("GET", url, headers={"Accept": MANIFEST_ACCEPT})
        if resp.status != 200:
            raise LookupError(f"{repo}:{reference}: HTTP {resp.status} {resp.body[:200]!r}")
        return resp.headers["docker-content-digest"]

    async def is_ready(self) -> bool:
        """Whether ``GET /v2/`` answers 200."""
        try:
            resp = await _http.request("GET", f"{self.url}/v2/", socket_timeout=2.0)
        except OSError:
            return False
        return resp.status == 200


def registry_config(storage: Path, port: int) -> str:
    """A distribution config.yml: filesystem storage, deletes on, 127.0.0.1 only, quiet."""
    return "\n".join(
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{port}",
            "",
        ]
    )


@asynccontextmanager
async def local_registry(
    *, parent: Path | None = None, ready_timeout: float = 20.0, binary: str = "docker-registry"
) -> AsyncIterator[LocalRegistry]:
    """Start a registry on a free port; stop it and delete its storage on exit.

    Args:
        parent: Where to create the temp dir (default: the system temp dir).
        ready_timeout: Seconds to wait for ``GET /v2/`` to answer 200.
        binary: The registry executable.

    Raises:
        MissingProgram: ``binary`` is not installed (checked before anything starts).
    """
    require(binary)
    directory = Path(tempfile.mkdtemp(prefix="flotilla-registry-", dir=parent))
    try:
        registry = await _start(directory, binary, ready_timeout)
        try:
            yield registry
        finally:
            await stop_process(registry.process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _start(directory: Path, binary: str, ready_timeout: float) -> LocalRegistry:
    last: RuntimeError | None = None
    for _ in range(_START_ATTEMPTS):
        try:
            return await _start_once(directory, binary, ready_timeout)
        except RuntimeError as error:  # it exited early: most likely the port was taken
            last = error
    log = (directory / "registry.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"registry did not start: {last}\n{log}")


async def _start_once(directory: Path, binary: str, ready_timeout: float) -> LocalRegistry:
    port = free_port()
    config = directory / "config.yml"
    config.write_text(registry_config(directory / "storage", port))
    proc = await start_daemon([binary, "serve", str(config)], directory / "registry.log")
    registry = LocalRegistry(directory, port, proc)
    try:
        async with asyncio.timeout(ready_timeout):
            await wait_until(registry.is_ready, what="registry", proc=proc)
    except BaseException:
        await stop_process(proc)
        raise
    return registry
