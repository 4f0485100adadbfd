"""The contract between ``bench/run.py`` and the benchmark modules.

A benchmark module ``bench/<name>.py`` exposes::

    async def run(ctx: BenchContext) -> list[Result]: ...

It measures each case against a baseline (containerd, nats-py, ...) with ``abab()`` and
returns one ``Result`` per case. Shared fixtures (a private containerd, a local registry,
the pushed test images) are started lazily by the context, once per run, and stopped by
the runner, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from bench._flotilla import Flotilla, start_flotilla

from flotilla.testkit import (
    Containerd,
    LocalRegistry,
    PublishedImages,
    build_images,
    local_registry,
    private_containerd,
    publish_images,
)

__all__ = [
    "FULL_LARGE_SIZE",
    "QUICK_LARGE_SIZE",
    "BenchContext",
    "Measurement",
    "Reset",
    "Result",
    "abab",
    "timed_ms",
]

T = TypeVar("T")
Measurement = Callable[[], Awaitable[float]]
"""One run of one side; returns one measurement (e.g. elapsed ms, MiB/s)."""
Reset = Callable[[], Awaitable[None]]
"""Brings the world back to the same (cold) state before each run."""

FULL_LARGE_SIZE = 200 << 20
QUICK_LARGE_SIZE = 16 << 20


@dataclass
class Result:
    """One benchmark case: every measured run of the baseline and of Flotilla.

    Attributes:
        case: What was measured, e.g. ``"pull large (cold)"``.
        unit: The unit of every measurement, e.g. ``"ms"`` or ``"MiB/s"``.
        baseline_label: Who Flotilla is compared with, e.g. ``"containerd"``, ``"nats-py"``.
        baseline: The baseline's measurements.
        ours: Flotilla's measurements.
        higher_is_better: True for throughputs, False for latencies.
    """

    case: str
    unit: str
    baseline_label: str
    baseline: list[float] = field(default_factory=list)
    ours: list[float] = field(default_factory=list)
    higher_is_better: bool = False

    @property
    def speedup(self) -> float:
        """How many times better Flotilla is: >1 means Flotilla wins, <1 the baseline.

        ``baseline/ours`` of the medians for lower-is-better units, ``ours/baseline`` for
        higher-is-better ones; NaN when either side has no runs.
        """
        if not self.baseline or not self.ours:
            return math.nan
        base, ours = statistics.median(self.baseline), statistics.median(self.ours)
        better, worse = (ours, base) if self.higher_is_better else (base, ours)
        return better / worse if worse else math.inf


async def _measure(side: Measurement, reset: Reset | None) -> float:
    if reset is not None:
        await reset()
    return await side()


async def abab(
    baseline: Measurement,
    ours: Measurement,
    *,
    rounds: int,
    warmup: int = 1,
    reset: Reset | None = None,
) -> tuple[list[float], list[float]]:
    """Measure both sides alternately: ``warmup`` discarded rounds, then ``rounds`` kept.

    Each round runs the baseline then ours (A B A B ...), so drift (page cache, thermal,
    background load) hits both sides alike. ``reset()`` runs before every run, warm-up
    included, so each starts from the same state.

    Returns:
        The baseline's and ours' measurements, ``rounds`` each.
    """
    for _ in range(warmup):
        await _measure(baseline, reset)
        await _measure(ours, reset)
    base: list[float] = []
    mine: list[float] = []
    for _ in range(rounds):
        base.append(await _measure(baseline, reset))
        mine.append(await _measure(ours, reset))
    return base, mine


def timed_ms(action: Callable[[], Awaitable[object]]) -> Measurement:
    """A ``Measurement`` that runs ``action`` and returns its wall time in milliseconds."""

    async def measure() -> float:
        start = time.perf_counter()
        await action()
        return (time.perf_counter() - start) * 1000.0

    return measure


class BenchContext:
    """What a benchmark gets: settings, a scratch dir, and lazily started shared fixtures.

    Fixtures are entered on ``stack`` the first time they are asked for and reused after;
    the runner closes the stack (in reverse start order) when all benchmarks are done or
    interrupted. Add a fixture with a method that calls ``lazy()``::

        async def flotilla(self) -> Flotilla:
            return await self.lazy("flotilla", _start_flotilla)

    Attributes:
        quick: Fewer rounds and smaller data, to finish in under two minutes.
        workdir: A scratch directory, removed after the run.
        stack: Where fixtures register their cleanup.
        cache_dir: Where built test images are kept between runs.
    """

    def __init__(self, *, quick: bool, workdir: Path, stack: AsyncExitStack, cache_dir: Path):
        self.quick = quick
        self.workdir = workdir
        self.stack = stack
        self.cache_dir = cache_dir
        self._values: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def rounds(self, full: int, quick: int = 3) -> int:
        """``quick`` rounds in quick mode, else ``full``."""
        return quick if self.quick else full

    async def lazy(self, key: str, start: Callable[[BenchContext], Awaitable[T]]) -> T:
        """The fixture ``key``, started with ``start(self)`` on first use.

        Started once, even when asked for concurrently; ``start`` registers its cleanup
        on ``self.stack``.
        """
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key not in self._values:
                self._values[key] = await start(self)
            return cast(T, self._values[key])

    async def containerd(self) -> Containerd:
        """The run's private containerd."""
        return await self.lazy("containerd", _start_containerd)

    async def registry(self) -> LocalRegistry:
        """The run's local registry."""
        return await self.lazy("registry", _start_registry)

    async def flotilla(self) -> Flotilla:
        """The run's Flotilla node: embedded NATS and the service processes."""
        return await self.lazy("flotilla", _start_flotilla)

    async def images(self) -> PublishedImages:
        """The test images, built (or taken from the cache) and pushed to ``registry()``."""
        return await self.lazy("images", _publish_images)


async def _start_flotilla(ctx: BenchContext) -> Flotilla:
    return await start_flotilla(ctx.stack, ctx.workdir)


async def _start_containerd(ctx: BenchContext) -> Containerd:
    return await ctx.stack.enter_async_context(private_containerd())


async def _start_registry(ctx: BenchContext) -> LocalRegistry:
    return await ctx.stack.enter_async_context(local_registry())


async def _publish_images(ctx: BenchContext) -> PublishedImages:
    size = QUICK_LARGE_SIZE if ctx.quick else FULL_LARGE_SIZE
    images = await build_images(ctx.cache_dir, large_size=size)
    return await publish_images(images, (await ctx.registry()).host)
