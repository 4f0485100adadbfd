"""Children that die with their parent, started without Python code between fork and exec."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flotilla.common.process import child_command
from flotilla.testkit import alive

PARENT = """
import subprocess, sys
from flotilla.common.process import child_command, child_options
child = subprocess.Popen(child_command(["sleep", "60"]), **child_options())
print(child.pid, flush=True)
sys.stdin.read()
"""


def test_a_missing_or_unrunnable_program_fails_as_exec_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        child_command(["no-such-program-anywhere"])
    with pytest.raises(FileNotFoundError):
        child_command([str(tmp_path / "gone")])
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        child_command([str(script)])


def test_the_child_gets_sigterm_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    # The parent-death signal is set just before the exec: kill the parent only after it.
    while Path(f"/proc/{child}/comm").read_text().strip() != "sleep":
        assert time.monotonic() < deadline, "the child never started sleep"
        time.sleep(0.01)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the child outlived its parent"
