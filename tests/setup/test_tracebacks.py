"""A failure whose traceback pytest cannot render must not end the run (flotilla.testkit.plugin).

The first case is the crash of Python 3.11 before 3.11.8 (CPython gh-106905): while pytest parses
a source file to show a failure, the garbage collector runs a finalizer that formats a traceback
(as asyncio does for a task whose exception nobody retrieved), and Python 3.11 parses each of its
lines with ``ast.parse``. The nested parse corrupts the outer one's recursion count:
``SystemError: AST constructor recursion depth mismatch``, and pytest stops with INTERNALERROR.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PLUGIN = "flotilla.testkit.plugin"

GARBAGE_THAT_LOGS = '''
import gc
import traceback


class Unretrieved:
    """Like a failed asyncio task nobody awaited: when collected, it formats its traceback."""

    def __init__(self) -> None:
        self.cycle = self  # only the cyclic collector frees it

    def __del__(self) -> None:
        Unretrieved()  # and the next one is already waiting
        try:
            raise ValueError("never retrieved")
        except ValueError as error:
            traceback.format_exception(error)


def test_fails_while_garbage_waits() -> None:
    gc.set_threshold(10)  # collect often: surely while pytest parses this file
    Unretrieved()
    assert 1 + 1 == 3


def test_runs_after() -> None:
    pass
'''

RENDERING_FAILS = """
def pytest_runtest_makereport(item, call):
    if item.name == "test_unlucky" and call.when == "call":
        raise SystemError("AST constructor recursion depth mismatch (before=1, after=2)")
"""

UNLUCKY = """
def test_unlucky() -> None:
    assert False, "the original failure"


def test_runs_after() -> None:
    pass
"""

MISSING = """
import pytest

from flotilla.testkit.programs import require


@pytest.mark.programs("flotilla-no-such-daemon")
def test_marked() -> None:
    pass


def test_required_inline() -> None:
    require("sh", "flotilla-no-such-tool")
"""


def pytest_run(
    tmp_path: Path, source: str, *args: str, conftest: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run pytest on ``source`` as its own session, outside this repository's configuration."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_case.py").write_text(source)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *args]
    return subprocess.run(
        [*argv, "-c", str(tmp_path / "pytest.ini"), "test_case.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_garbage_collected_while_pytest_parses_does_not_crash_it(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, GARBAGE_THAT_LOGS, "-p", PLUGIN)
    assert "INTERNALERROR" not in result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "assert (1 + 1) == 3" in result.stdout  # the real failure, rendered as usual


def test_without_the_plugin_this_python_crashes_or_is_fixed(tmp_path: Path) -> None:
    # The control: documents the bug on the Pythons that have it (3.11.0 to 3.11.7).
    result = pytest_run(tmp_path, GARBAGE_THAT_LOGS)
    if (3, 11) <= sys.version_info[:3] < (3, 11, 8):
        assert "AST constructor recursion depth mismatch" in result.stdout + result.stderr
        assert "1 passed" not in result.stdout  # the rest of the session never ran


def test_a_report_that_cannot_be_built_becomes_plain_text(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, UNLUCKY, "-p", PLUGIN, conftest=RENDERING_FAILS)
    assert "INTERNALERROR" not in result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "AssertionError: the original failure" in result.stdout
    assert "pytest could not render this failure: SystemError" in result.stdout


def test_a_missing_program_is_one_line(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, MISSING, "-p", PLUGIN)
    assert "1 failed, 1 error" in result.stdout
    for name, phase in (("test_marked", "ERROR at setup of"), ("test_required_inline", "")):
        section = result.stdout.split(f" {phase} {name} ".replace("  ", " "), 1)[1]
        reason = section.split("\n")[1]
        assert reason.startswith("flotilla-no-such-")
        assert reason.endswith("not found on PATH")
        assert section.split("\n")[2].startswith(("___", "===")), section  # and nothing more
