from __future__ import annotations

import asyncio
import json
import math
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench._runner import save
from bench.harness import BenchContext, Measurement, Result, abab, timed_ms
from bench.report import SPEEDUP_LABEL, format_table, iqr, summarize


async def test_abab_warms_up_then_alternates_with_a_reset_before_each_run() -> None:
    log: list[str] = []
    values = iter(range(100))

    def side(name: str) -> Measurement:
        async def measure() -> float:
            log.append(name)
            return float(next(values))

        return measure

    async def reset() -> None:
        log.append("reset")

    base, ours = await abab(side("A"), side("B"), rounds=3, warmup=1, reset=reset)
    assert log == ["reset", "A", "reset", "B"] * 4
    assert base == [2.0, 4.0, 6.0]
    assert ours == [3.0, 5.0, 7.0]


async def test_abab_without_reset_or_warmup() -> None:
    async def one() -> float:
        return 1.0

    async def two() -> float:
        return 2.0

    assert await abab(one, two, rounds=2, warmup=0) == ([1.0, 1.0], [2.0, 2.0])


async def test_timed_ms_measures_wall_time() -> None:
    elapsed = await timed_ms(lambda: asyncio.sleep(0.02))()
    assert 15.0 < elapsed < 1000.0


def test_speedup_is_oriented_so_that_above_one_means_flotilla_wins() -> None:
    faster = Result("latency", "ms", "containerd", [10.0, 12.0, 11.0], [5.0, 6.0, 4.0])
    assert faster.speedup == 2.2
    slower_throughput = Result("tput", "MiB/s", "nats-py", [200.0], [100.0], higher_is_better=True)
    assert slower_throughput.speedup == 0.5
    assert math.isnan(Result("none", "ms", "containerd").speedup)


def test_summary_and_table() -> None:
    result = Result("pull", "ms", "containerd", [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 1.0, 1.0])
    row = summarize(result)
    assert (row.baseline_median, row.ours_median, row.runs) == (3.0, 1.0, 3)
    assert row.baseline_iqr == iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == 2.0
    table = format_table([result])
    assert SPEEDUP_LABEL in table
    assert "3x" in table.splitlines()[2]
    assert format_table([]).count("\n") == 1  # header and rule only


async def test_save_writes_json_and_png(tmp_path: Path) -> None:
    results = [
        Result("pull", "ms", "containerd", [10.0, 11.0], [5.0, 6.0]),
        Result("publish", "msg/s", "nats-py", [1e5], [2e5], higher_is_better=True),
        Result("empty", "ms", "containerd"),
    ]
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    paths = await save(tmp_path, results, {"date": now.isoformat(), "quick": True}, now)
    assert [p.name for p in paths] == [
        "2030-01-02T030405Z.json",
        "2030-01-02T030405Z.png",
        "latest.json",
        "latest.png",
    ]
    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["date"] == now.isoformat()
    assert set(document["machine"]) >= {"hostname", "cpu_model", "cores", "memory_bytes", "kernel"}
    assert set(document["versions"]) == {"python", "containerd", "runc", "nats-server", "skopeo"}
    assert [r["speedup"] for r in document["results"]] == [10.5 / 5.5, 2.0, None]
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_context_starts_a_fixture_once_and_stops_it_with_the_stack(tmp_path: Path) -> None:
    events: list[str] = []

    async def start(ctx: BenchContext) -> str:
        events.append("start")
        await asyncio.sleep(0.01)
        ctx.stack.callback(events.append, "stop")
        return "fixture"

    async with AsyncExitStack() as stack:
        ctx = BenchContext(quick=True, workdir=tmp_path, stack=stack, cache_dir=tmp_path)
        got = await asyncio.gather(*(ctx.lazy("thing", start) for _ in range(5)))
        assert got == ["fixture"] * 5
        assert events == ["start"]
        assert ctx.rounds(10) == 3
    assert events == ["start", "stop"]
