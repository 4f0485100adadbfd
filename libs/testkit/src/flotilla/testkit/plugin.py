"""pytest plugin for the whole suite: missing programs in one line, and a run that always ends.

Enable it with ``pytest_plugins = ["flotilla.testkit.plugin"]`` in the top-level ``conftest.py``.

Missing programs. A test that runs an external program says so with
``@pytest.mark.programs("docker", "dockerd")`` (or a module's ``pytestmark``), or calls
``flotilla.testkit.programs.require()`` in a fixture. A missing one fails the test at once with
one line naming it (``MissingProgram``), never a skip that CI would not show, never a wait for a
daemon that cannot start. The kit itself raises ``MissingProgram`` wherever it runs a program.

Tracebacks that cannot crash the run. To show a failure, pytest parses the source files of its
traceback with ``ast.parse``. While it does, the cyclic garbage collector can run, and with it
finalizers: an asyncio task whose exception nobody retrieved logs that exception, and logging
formats the traceback, which on Python 3.11 parses each line with ``ast.parse`` for its ``^^^``
markers. Before 3.11.8, CPython keeps the AST builder's recursion depth in one per-interpreter
counter (CPython gh-106905), so that nested parse leaves the outer one with a wrong count and
the outer parse fails with ``SystemError: AST constructor recursion depth mismatch``; pytest
then stops the whole session with ``INTERNALERROR``. ``--tb=short`` does not avoid it (it
parses the same files). So the collector is paused while pytest builds a report, which leaves
no way for Python code to run inside pytest's ``ast.parse``; and if building a report fails
anyway, the test gets a plain-text report instead of the session ending.
"""

from __future__ import annotations

import contextlib
import gc
import traceback
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Literal, cast

import pytest

from flotilla.testkit.programs import MissingProgram, require

__all__ = ["gc_paused"]

pytest_plugins = ["flotilla.testkit.cluster"]  # the ``nats_cluster`` fixture

_Phase = Literal["setup", "call", "teardown"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection (hence no finalizers run by it) inside the block."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``programs`` marker (the suite runs with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "programs(*names): external programs the test runs; a missing one fails it in one line",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check the ``programs`` markers before any fixture starts anything."""
    names = [name for mark in item.iter_markers("programs") for name in mark.args]
    if names:
        require(*names)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Build the report with the collector paused; a missing program is one line."""
    with gc_paused():
        try:
            report = yield
        except Exception as error:  # noqa: BLE001 - any failure to render must not end the run
            return _plain_report(item, call, error)
        missing = _missing_program(call.excinfo.value) if call.excinfo else None
        if missing is not None and report.failed:
            info = pytest.ExceptionInfo.from_exception(missing)
            report.longrepr = info.getrepr(style="value", chain=False)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Collect, and render a collection error, with the collector paused."""
    with gc_paused():
        return (yield)


def _missing_program(error: BaseException) -> MissingProgram | None:
    """``error`` if it is a ``MissingProgram``, or the first one in an exception group."""
    if isinstance(error, MissingProgram):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := _missing_program(inner)) is not None:
                return found
    return None


def _plain_report(
    item: pytest.Item, call: pytest.CallInfo[None], error: Exception
) -> pytest.TestReport:
    """A failed report whose text is Python's own rendering of the test's exception."""
    text = _python_traceback(call.excinfo.value, item.path) if call.excinfo else ""
    text += f"\n(pytest could not render this failure: {type(error).__name__}: {error})"
    return pytest.TestReport(
        item.nodeid,
        item.location,
        dict.fromkeys(item.keywords, 1),
        "failed",
        text,
        cast(_Phase, call.when),
        duration=call.duration,
        start=call.start,
        stop=call.stop,
        user_properties=item.user_properties,
    )


def _python_traceback(error: BaseException, test_file: Path) -> str:
    """``error``'s traceback from its first frame in ``test_file`` on (all of it if none is)."""
    start = tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != str(test_file):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb or start))
