"""A private containerd: its own root, state and socket under a temp dir, gone on exit.

Usage::

    async with private_containerd() as ctd:
        await ctd.ctr("images", "pull", "--plain-http", ref, namespace="bench")
"""

from __future__ import annotations

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
    kill_processes_mentioning,
    run,
    start_daemon,
    stop_process,
    wait_until,
)

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
        """containerd's persistent root (content, snapshots, metadata)."""
        return self.directory / "root"

    @property
    def state(self) -> Path:
        """containerd's runtime state directory."""
        return self.directory / "state"

    @property
    def log_path(self) -> Path:
        """containerd's stdout and stderr."""
        return self.directory / "containerd.log"

    async def ctr(self, *args: str, namespace: str | None = None, timeout: float = 300.0) -> str:
        """Run ``ctr --address <sock> [--namespace ns] args...`` and return its stdout.

        Raises:
            CommandError: ``ctr`` failed; its stderr is in the message.
        """
        argv = ["ctr", "--address", str(self.address)]
        if namespace is not None:
            argv += ["--namespace", namespace]
        return await run(*argv, *args, timeout=timeout)

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
        await ctd.ctr("version", timeout=5.0)
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
    """
    directory = Path(tempfile.mkdtemp(prefix="flotilla-ctd-", dir=parent))
    try:
        if len(str(directory / "containerd.sock")) > _MAX_SOCKET_PATH:
            raise ValueError(f"socket path under {directory} is too long for a unix socket")
        (directory / "config.toml").write_text(containerd_config(directory))
        argv = [binary, "--config", str(directory / "config.toml")]
        proc = await start_daemon(argv, directory / "containerd.log")
        try:
            yield await _until_ready(Containerd(directory, proc), ready_timeout)
        finally:
            await _stop(Containerd(directory, proc))
    finally:
        unmount_under(directory)
        shutil.rmtree(directory, ignore_errors=True)


async def _until_ready(ctd: Containerd, timeout: float) -> Containerd:
    try:
        await wait_until(
            partial(_answers, ctd), timeout=timeout, what="containerd", proc=ctd.process
        )
    except (RuntimeError, TimeoutError) as error:
        raise RuntimeError(f"{error}\n{ctd.log_tail()}") from error
    return ctd


async def _stop(ctd: Containerd) -> None:
    try:
        await stop_process(ctd.process)
    finally:
        # Shims outlive containerd by design; they name our socket on their command line.
        kill_processes_mentioning(str(ctd.address))
