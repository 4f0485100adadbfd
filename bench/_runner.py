"""Discover, run and report the benchmark modules; ``run.py`` is the entry point."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from bench._machine import machine_info, versions
from bench.harness import BenchContext, Result
from bench.report import format_table, to_json, write_chart, write_json

__all__ = ["BENCH_DIR", "BenchFn", "discover", "load", "main", "save", "select"]

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CACHE = BENCH_DIR.parent / "var" / "cache" / "testkit-images"
NOT_BENCHMARKS = frozenset({"harness", "run", "report"})

BenchFn = Callable[[BenchContext], Awaitable[list[Result]]]


def discover(bench_dir: Path) -> dict[str, Path]:
    """Benchmark modules in ``bench_dir``: every ``*.py`` but harness/run/report/``_*``."""
    return {
        path.stem: path
        for path in sorted(bench_dir.glob("*.py"))
        if path.stem not in NOT_BENCHMARKS and not path.stem.startswith("_")
    }


def select(available: dict[str, Path], only: Sequence[str] | None) -> dict[str, Path]:
    """The modules named in ``only`` (all when None), in discovery order.

    Raises:
        SystemExit: A name in ``only`` is not a benchmark module.
    """
    if not only:
        return available
    unknown = sorted(set(only) - set(available))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {sorted(available)}")
    return {name: path for name, path in available.items() if name in only}


def load(name: str, path: Path) -> BenchFn:
    """Import ``path`` as ``bench.<name>`` and return its ``run`` coroutine function."""
    module_name = f"bench.{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while executing
    spec.loader.exec_module(module)
    run = getattr(module, "run", None)
    if not asyncio.iscoroutinefunction(run):
        raise TypeError(f"{path} has no `async def run(ctx: BenchContext) -> list[Result]`")
    return run


async def run_all(ctx: BenchContext, benches: dict[str, Path]) -> tuple[list[Result], list[str]]:
    """Load and run each benchmark in turn; returns all results and the names that failed.

    A benchmark that fails to import or to run is reported and skipped: it must not hide
    the others' results.
    Cancellation (Ctrl-C, SIGTERM) is not a failure and propagates.
    """
    results: list[Result] = []
    failed: list[str] = []
    for name, path in benches.items():
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            results += await load(name, path)(ctx)
        except Exception:  # noqa: BLE001 - report it and go on with the others
            traceback.print_exc()
            failed.append(name)
    return results, failed


async def save(
    results_dir: Path, results: list[Result], meta: dict[str, Any], now: datetime
) -> list[Path]:
    """Write ``<date>.json``/``.png`` and ``latest.json``/``.png``; returns the paths."""
    document = to_json(results, {**meta, "machine": machine_info(), "versions": await versions()})
    stem = now.strftime("%Y-%m-%dT%H%M%SZ")
    return await asyncio.to_thread(_write_files, results_dir, stem, document, results)


def _write_files(
    results_dir: Path, stem: str, document: dict[str, Any], results: list[Result]
) -> list[Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        results_dir / name for name in (f"{stem}.json", f"{stem}.png", "latest.json", "latest.png")
    ]
    write_json(paths[0], document)
    write_chart(paths[1], results, f"Flotilla benchmarks {stem}")
    write_json(paths[2], document)
    shutil.copyfile(paths[1], paths[3])
    return paths


async def _run(args: argparse.Namespace) -> int:
    _cancel_on_sigterm()
    benches = select(discover(args.bench_dir), args.only)
    started, clock = datetime.now(UTC), time.monotonic()
    async with AsyncExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="flotilla-bench-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        ctx = BenchContext(quick=args.quick, workdir=workdir, stack=stack, cache_dir=args.cache_dir)
        results, failed = await run_all(ctx, benches)
    print(format_table(results))
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "benchmarks": list(benches),
        "failed": failed,
        "duration_s": round(time.monotonic() - clock, 3),
    }
    for path in await save(args.results_dir, results, meta, started):
        print(f"wrote {path}")
    return 1 if failed else 0


def _cancel_on_sigterm() -> None:
    """Let SIGTERM unwind like Ctrl-C does, so every fixture is stopped and removed."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few rounds, small data (<2 min)")
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="run these")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="built images")
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the benchmarks, print and save the results; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.list:
        print("\n".join(discover(args.bench_dir)))
        return 0
    try:
        # uvloop, as every Flotilla service runs (flotilla.common.runtime); both sides share it.
        return uvloop.run(_run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: everything started was stopped and removed", file=sys.stderr)
        return 130
