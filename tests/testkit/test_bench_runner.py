from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench._runner import BENCH_DIR, discover, main

FAKE = """
from bench.harness import BenchContext, Result, abab


async def run(ctx: BenchContext) -> list[Result]:
    async def base() -> float:
        return 2.0

    async def ours() -> float:
        return 1.0

    b, o = await abab(base, ours, rounds=ctx.rounds(5), warmup=0)
    return [Result("{name}", "ms", "containerd", b, o)]
"""
BROKEN = """
async def run(ctx):
    raise RuntimeError("boom")
"""


def _bench_dir(tmp_path: Path, **modules: str) -> Path:
    bench = tmp_path / "bench"
    bench.mkdir()
    for name, source in modules.items():
        (bench / f"{name}.py").write_text(source)
    for skipped in ("harness", "run", "report", "_helper"):
        (bench / f"{skipped}.py").write_text("raise AssertionError('not a benchmark')\n")
    return bench


def _run(tmp_path: Path, bench: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    results = tmp_path / "results"
    argv = ["--quick", "--bench-dir", str(bench), "--results-dir", str(results), *extra]
    code = main([*argv, "--cache-dir", str(tmp_path / "cache")])
    return code, json.loads((results / "latest.json").read_text())


def test_discovery_skips_the_harness_itself() -> None:
    assert not {"harness", "run", "report"} & set(discover(BENCH_DIR))
    assert not any(name.startswith("_") for name in discover(BENCH_DIR))


def test_no_benchmarks_still_prints_an_empty_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = _run(tmp_path, _bench_dir(tmp_path))
    assert code == 0
    assert document["results"] == []
    assert "speedup" in capsys.readouterr().out
    assert (tmp_path / "results" / "latest.png").exists()


def test_only_runs_the_named_modules(tmp_path: Path) -> None:
    bench = _bench_dir(
        tmp_path, one=FAKE.replace("{name}", "one"), two=FAKE.replace("{name}", "two")
    )
    code, document = _run(tmp_path, bench, "--only", "two")
    assert code == 0
    assert document["benchmarks"] == ["two"]
    (result,) = document["results"]
    assert result["case"] == "two"
    assert result["speedup"] == 2.0
    assert len(result["ours"]) == 3  # quick rounds


def test_a_failing_module_does_not_hide_the_others(tmp_path: Path) -> None:
    good = FAKE.replace("{name}", "good")
    bench = _bench_dir(tmp_path, bad=BROKEN, good=good, invalid="this is not python")
    code, document = _run(tmp_path, bench)
    assert code == 1
    assert document["failed"] == ["bad", "invalid"]
    assert [r["case"] for r in document["results"]] == ["good"]


def test_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown benchmark"):
        main(["--bench-dir", str(_bench_dir(tmp_path)), "--only", "nope"])
