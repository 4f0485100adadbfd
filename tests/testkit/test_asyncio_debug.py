"""The asyncio debug-mode guard fails a test whose event loop was blocked, and only then."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

INNER = """
import asyncio
import time

import pytest


@pytest.fixture
async def blocking():
    time.sleep(0.08)
    yield


async def test_blocks_the_loop() -> None:
    await asyncio.sleep(0)
    time.sleep(0.08)  # in the event loop, over the 50 ms threshold (asyncio's own is 100 ms)


async def test_blocks_a_thread_only() -> None:
    await asyncio.to_thread(time.sleep, 0.2)


def test_without_a_loop() -> None:
    time.sleep(0.2)


async def test_with_a_blocking_fixture(blocking: None) -> None:
    pass
"""


def run_inner(tmp_path: Path, debug: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["flotilla.testkit.asyncio_debug"]\n')
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    if debug:
        env["PYTHONASYNCIODEBUG"] = "1"
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
        "-o", "asyncio_default_fixture_loop_scope=function", "--rootdir", str(tmp_path),
        str(tmp_path),
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no debug"])
def test_fails_only_the_test_that_blocked_the_loop(tmp_path: Path, debug: bool) -> None:
    result = run_inner(tmp_path, debug)
    if not debug:
        assert result.returncode == 0, result.stdout
        return
    assert result.returncode == 1, result.stdout
    assert "4 passed, 2 errors" in result.stdout
    assert "ERROR at teardown of test_blocks_the_loop" in result.stdout
    assert "the event loop was blocked for more than 0.05 s" in result.stdout
    assert "in call: Executing <Task" in result.stdout
    assert "coro=<test_blocks_the_loop()" in result.stdout  # names the callback
    assert "ERROR at teardown of test_with_a_blocking_fixture" in result.stdout
    assert "in setup of fixture 'blocking': Executing <Task" in result.stdout
