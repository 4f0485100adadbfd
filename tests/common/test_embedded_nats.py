"""The embedded nats-server as started for real: its environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flotilla.common.natsserver import GO_GC_PERCENT, EmbeddedNats


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.partition(b"=") for entry in raw.split(b"\0") if entry)
    return {key.decode(): value.decode() for key, _, value in pairs}


async def test_runs_with_a_relaxed_garbage_collector(nats_server: EmbeddedNats) -> None:
    assert nats_server.pid is not None
    assert _environment(nats_server.pid)["GOGC"] == (os.environ.get("GOGC") or GO_GC_PERCENT)


async def test_the_environment_s_gogc_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOGC", "150")
    async with EmbeddedNats(tmp_path / "nats") as server:
        assert server.pid is not None
        assert _environment(server.pid)["GOGC"] == "150"
