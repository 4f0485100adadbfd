"""Fail a test whose event loop blocked, when asyncio's debug mode is on.

With ``PYTHONASYNCIODEBUG=1`` (or ``python -X dev``, or pytest-asyncio's ``--asyncio-debug``)
asyncio times every callback and task step and logs ``Executing <callback> took 0.123 seconds``
for the slow ones. Here "slow" means over :data:`SLOW_CALLBACK` (asyncio's own default, 0.1 s,
would let 50-100 ms stalls through): the test that logged one fails at teardown, naming the
callback and the phase (setup, call, teardown) it ran in. Without debug mode this does nothing.

A callback counts as blocking only if its thread really held the loop: it ran on the CPU for
the threshold, or it waited in the kernel (a blocking call, the GIL) at least once. A step that
took long only because the machine's other processes had the cores (the loop's thread
runnable, preempted) does not: on a busy 2-core machine that happens anywhere, and says nothing
about the code. Every step is measured this way (``getrusage`` of the thread, about 1 us).

Enable it with ``pytest_plugins = ["flotilla.testkit.asyncio_debug"]`` in a ``conftest.py``.
Only loops of this process are watched; a service run as a child process logs its own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import sys
import time
from collections.abc import Generator, Iterator
from typing import Final

import pytest

__all__ = ["SLOW_CALLBACK", "debug_mode", "slow_callbacks"]

SLOW_CALLBACK: Final = 0.05
"""Seconds a callback may hold the event loop before it counts as blocking it."""

_LOGGER: Final = "asyncio"
_ACTIVE: Final = pytest.StashKey[bool]()


def debug_mode() -> bool:
    """Whether asyncio starts new event loops in debug mode (its own rule)."""
    from_env = not sys.flags.ignore_environment and bool(os.environ.get("PYTHONASYNCIODEBUG"))
    return sys.flags.dev_mode or from_env


class _DebugPolicy(asyncio.DefaultEventLoopPolicy):
    """Makes every new loop leave slow callbacks to :func:`_timed_run`.

    asyncio's own test is wall time alone.
    """

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.slow_callback_duration = _NEVER
        return loop


_NEVER: Final = 3600.0
_run_handle: Final = asyncio.events.Handle._run


def _timed_run(handle: asyncio.Handle) -> None:
    """Run one step of the loop; report it if its thread held the loop over the threshold."""
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_THREAD)
    try:
        _run_handle(handle)
    finally:
        took = time.perf_counter() - started
        if took >= SLOW_CALLBACK:
            _judge(handle, took, before)


def _judge(handle: asyncio.Handle, took: float, before: resource.struct_rusage) -> None:
    after = resource.getrusage(resource.RUSAGE_THREAD)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    waits = after.ru_nvcsw - before.ru_nvcsw
    if cpu >= SLOW_CALLBACK or waits:
        logging.getLogger(_LOGGER).warning(
            "Executing %s took %.3f seconds (%.3f s on the CPU, %d waits in the kernel)",
            _describe(handle),
            took,
            cpu,
            waits,
        )


def _describe(handle: asyncio.Handle) -> str:
    """The task a step belongs to, as asyncio names it, else the handle."""
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    return repr(owner) if isinstance(owner, asyncio.Task) else repr(handle)


class _Phase:
    """Which phase of its test is running: an async fixture's callback names only pytest-asyncio."""

    now = "setup"


class _SlowCallbacks(logging.Handler):
    """Collects asyncio's slow-callback warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith("Executing "):
            self.seen.append(f"in {_Phase.now}: {record.getMessage()}")


def _asyncio_debug_option(config: pytest.Config) -> bool:
    try:
        option = config.getoption("asyncio_debug")
        return bool(option) or config.getini("asyncio_debug") in (True, "true")
    except ValueError:  # no pytest-asyncio
        return False


def pytest_configure(config: pytest.Config) -> None:
    """In debug mode, make the loops pytest-asyncio creates debug ones, with our threshold."""
    active = debug_mode() or _asyncio_debug_option(config)
    config.stash[_ACTIVE] = active
    if active:
        # pytest-asyncio turns debug mode off unless asked, whatever the environment says.
        config.option.asyncio_debug = True
        # It builds its loops with the policy in place when the session starts.
        asyncio.set_event_loop_policy(_DebugPolicy())
        setattr(asyncio.events.Handle, "_run", _timed_run)  # noqa: B010 - patching, on purpose


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Label what follows as the test's setup; in debug mode, set the heap aside first.

    The pytest process's heap grows with every test (debug mode keeps a traceback per task and
    future), and a full collection of it held the loop 30-50 ms on its own wherever it struck.
    Collected and frozen before each test, the heap is left out of the test's collections.
    """
    _Phase.now = "setup"
    if item.config.stash.get(_ACTIVE, False):
        gc.collect()
        gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Label what follows as the set-up of that fixture."""
    outer, _Phase.now = _Phase.now, f"setup of fixture {fixturedef.argname!r}"
    try:
        return (yield)
    finally:
        _Phase.now = outer


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Label what follows as the test itself."""
    _Phase.now = "call"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Label what follows as the test's teardown."""
    _Phase.now = "teardown"


@pytest.fixture(autouse=True)
def slow_callbacks(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """The slow callbacks logged during the test (its fixtures too); any fails it."""
    if not request.config.stash.get(_ACTIVE, False):
        yield []
        return
    handler = _SlowCallbacks()
    logger = logging.getLogger(_LOGGER)
    level = logger.level
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)  # a test's logging set-up must not hide them
    logger.addHandler(handler)
    try:
        yield handler.seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    if handler.seen:
        lines = "\n".join(f"  {seen}" for seen in handler.seen)
        pytest.fail(
            f"the event loop was blocked for more than {SLOW_CALLBACK} s:\n{lines}", pytrace=False
        )
