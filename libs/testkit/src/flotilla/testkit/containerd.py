"""A private containerd: its own root, state and socket under a temp dir, gone on exit.

Usage::

    async with private_containerd() as ctd:
        await ctd.ctr("images", "pull", "--plain-http", ref, namespace="bench")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from flotilla.testkit._mounts import unmount_under
from flotilla.testkit._proc import (
    CommandError,
    Process,
    kill,
    processes,
    run,
    start_daemon,
    stop_process,
    wait_gone,
    wait_until,
)
from flotilla.testkit.programs import require

__all__ = ["Containerd", "containerd_config", "private_containerd"]

# Plugins that need setup we do not do (CRI, exotic snapshotters, tracing exporters).
_DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; leave room for containerd's ".ttrpc"
_TASK_CLEANUP_SECONDS = 20.0


@dataclass(frozen=True)
class Containerd:
    """A running private containerd.

    Attributes:
        directory: Holds ``config.toml``, ``root/``, ``state/``, the socket and the log.
        process: The containerd process.
    """

    directory: Path
    process: Process

    @property
    def address(self) -> Path:
        """The gRPC socket (``ctr --address``)."""
        return self.directory / "containerd.sock"

    @property
    def root(self) -> Path:
        """Containerd's persistent root (content, snapshots, metadata)."""
        return self.directory / "root"

    @property
    def state(self) -> Path:
        """Containerd's runtime state directory."""
        return self.directory / "state"

    @property
    def log_path(self) -> Path:
        """Containerd's stdout and stderr."""
        return self.directory / "containerd.log"

    async def ctr(self, *args: str, namespace: str | None = None) -> str:
        """Run ``ctr --address <sock> [--namespace ns] args...`` and return its stdout.

        Raises:
            CommandError: ``ctr`` failed; its stderr is in the message.
        """
        argv = ["ctr", "--address", str(self.address)]
        if namespace is not None:
            argv += ["--namespace", namespace]
        return await run(*argv, *args)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of containerd's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def containerd_config(directory: Path) -> str:
    """A version 2 config.toml that keeps everything of this containerd in ``directory``.

    ``content_sharing_policy = "isolated"`` makes every namespace fetch its own blobs,
    so a pull into a fresh namespace is really cold.
    """
    sock = directory / "containerd.sock"

    def q(value: object) -> str:
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string

    return "\n".join(
        [
            "version = 2",
            f"root = {q(directory / 'root')}",
            f"state = {q(directory / 'state')}",
            f"disabled_plugins = [{', '.join(q(p) for p in _DISABLED_PLUGINS)}]",
            "[grpc]",
            f"  address = {q(sock)}",
            "[ttrpc]",
            f"  address = {q(str(sock) + '.ttrpc')}",
            "[debug]",
            '  address = ""',
            '  level = "info"',
            "[metrics]",
            '  address = ""',
            '[plugins."io.containerd.metadata.v1.bolt"]',
            '  content_sharing_policy = "isolated"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {q(directory / 'opt')}",
            "",
        ]
    )


async def _answers(ctd: Containerd) -> bool:
    try:
        async with asyncio.timeout(5.0):
            await ctd.ctr("version")
    except (CommandError, TimeoutError):
        return False
    return True


@asynccontextmanager
async def private_containerd(
    *, parent: Path | None = None, ready_timeout: float = 30.0, binary: str = "containerd"
) -> AsyncIterator[Containerd]:
    """Start a private containerd; stop it, unmount and delete its directory on exit.

    Cleanup runs on any exit, including cancellation and KeyboardInterrupt.

    Args:
        parent: Where to create the temp dir (default: the system temp dir). Keep it short:
            the socket path must fit in 100 bytes.
        ready_timeout: Seconds to wait for ``ctr version`` to answer.
        binary: The containerd executable.

    Raises:
        MissingProgram: ``binary`` or ``ctr`` is not installed (checked before anything starts).
    """
    require(binary, "ctr")
    directory = Path(tempfile.mkdtemp(prefix="flotilla-ctd-", dir=parent))
    try:
        if len(str(directory / "containerd.sock")) > _MAX_SOCKET_PATH:
            raise ValueError(f"socket path under {directory} is too long for a unix socket")
        (directory / "config.toml").write_text(containerd_config(directory))
        argv = [binary, "--config", str(directory / "config.toml")]
        ctd = Containerd(directory, await start_daemon(argv, directory / "containerd.log"))
        try:
            yield await _until_ready(ctd, ready_timeout)
        finally:
            await _stop(ctd)
    finally:
        # In a thread: a daemon's snapshots take a while to unmount and delete, and the loop
        # must not stall for it (shielded, so a second cancellation cannot cut it short).
        await asyncio.shield(asyncio.to_thread(_remove, directory))


def _remove(directory: Path) -> None:
    unmount_under(directory)
    shutil.rmtree(directory, ignore_errors=True)


async def _until_ready(ctd: Containerd, ready_timeout: float) -> Containerd:
    try:
        async with asyncio.timeout(ready_timeout):
            await wait_until(partial(_answers, ctd), what="containerd", proc=ctd.process)
    except TimeoutError as error:
        raise RuntimeError(
            f"containerd: no answer after {ready_timeout}s\n{ctd.log_tail()}"
        ) from error
    except RuntimeError as error:
        raise RuntimeError(f"{error}\n{ctd.log_tail()}") from error
    return ctd


async def _stop(ctd: Containerd) -> None:
    try:
        await _remove_tasks(ctd)
        await stop_process(ctd.process)
    finally:
        await _kill_shims(ctd.address)


async def _remove_tasks(ctd: Containerd) -> None:
    """Force-delete every task, so that no container outlives this containerd (best effort)."""
    if ctd.process.returncode is not None:
        return
    try:
        async with asyncio.timeout(_TASK_CLEANUP_SECONDS):
            for namespace in (await ctd.ctr("namespaces", "ls", "--quiet")).split():
                for task in (await ctd.ctr("tasks", "ls", "--quiet", namespace=namespace)).split():
                    await ctd.ctr("tasks", "rm", "--force", task, namespace=namespace)
    except (CommandError, TimeoutError):
        pass


async def _kill_shims(address: Path) -> None:
    """Shims outlive containerd by design; ours are the ones given our socket."""
    shims = [pid for pid, argv in processes() if _is_shim_of(argv, address)]
    for pid in shims:
        kill(pid)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5.0):
            await wait_gone(shims)


def _is_shim_of(argv: list[str], address: Path) -> bool:
    return bool(argv) and Path(argv[0]).name.startswith("containerd-shim") and str(address) in argv
