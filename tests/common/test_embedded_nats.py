"""The embedded nats-server as started for real: its environment, and starts that fail."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from flotilla.common import errdefs
from flotilla.common.natsserver import GO_GC_PERCENT, EmbeddedNats


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.partition(b"=") for entry in raw.split(b"\0") if entry)
    return {key.decode(): value.decode() for key, _, value in pairs}


def _servers_on(store_dir: Path) -> list[int]:
    """Live nats-server processes storing in ``store_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(store_dir).encode() in argv and argv[0].endswith(b"nats-server") and state != "Z":
            found.append(int(entry.name))
    return found


async def test_runs_with_a_relaxed_garbage_collector(nats_server: EmbeddedNats) -> None:
    assert nats_server.pid is not None
    assert _environment(nats_server.pid)["GOGC"] == (os.environ.get("GOGC") or GO_GC_PERCENT)


async def test_the_environment_s_gogc_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOGC", "150")
    async with EmbeddedNats(tmp_path / "nats") as server:
        assert server.pid is not None
        assert _environment(server.pid)["GOGC"] == "150"


async def test_a_start_that_times_out_leaves_no_server(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    with pytest.raises(errdefs.Unavailable, match=r"not ready within 0.001s"):
        await server.start(timeout=0.001)
    assert server.pid is None
    assert _servers_on(tmp_path / "nats") == []


async def test_a_port_someone_else_holds_fails_the_start_and_leaves_no_server(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()  # accepts connections: only the server's own ports file proves it is up
        server = EmbeddedNats(tmp_path / "nats", port=taken.getsockname()[1])
        with pytest.raises(errdefs.Unavailable, match="nats-server exited with status 1"):
            await server.start()
    assert server.pid is None
    assert _servers_on(tmp_path / "nats") == []


async def test_a_cancelled_start_leaves_no_server(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    starting = asyncio.create_task(server.start())
    async with asyncio.timeout(10):
        while server.pid is None:
            await asyncio.sleep(0)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert _servers_on(tmp_path / "nats") == []


async def test_started_again_on_the_same_port_after_a_crash(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    await server.start()
    try:
        first_pid, port = server.pid, server.port
        assert first_pid is not None
        assert server.version
        os.kill(first_pid, 9)
        assert await asyncio.wait_for(server.wait(), 10) == -9
        assert list((tmp_path / "nats" / "ports").iterdir()) == []  # its stale ports file is gone
        await server.start()
        assert server.port == port
        assert server.pid not in (None, first_pid)
    finally:
        await server.stop()
    assert _servers_on(tmp_path / "nats") == []
