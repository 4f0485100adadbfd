"""Summaries of benchmark results: the console table, the JSON record and the bar chart."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness import Result
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

__all__ = [
    "SPEEDUP_LABEL",
    "Row",
    "format_table",
    "iqr",
    "summarize",
    "to_json",
    "write_chart",
    "write_json",
]

SPEEDUP_LABEL = "speedup (x, >1 = Flotilla better)"
_TICKS = [m * 10.0**e for e in range(-3, 4) for m in (1, 2, 5)]
_HEADERS = (
    "case",
    "baseline",
    "unit",
    "baseline med",
    "ours med",
    SPEEDUP_LABEL,
    "IQR baseline / ours",
    "n",
)


def iqr(values: Sequence[float]) -> float:
    """The interquartile range (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q3 - q1


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass(frozen=True)
class Row:
    """One result reduced to what the table, JSON and chart show."""

    case: str
    baseline_label: str
    unit: str
    baseline_median: float
    ours_median: float
    speedup: float
    baseline_iqr: float
    ours_iqr: float
    runs: int


def summarize(result: Result) -> Row:
    """Medians, speedup, spreads and run count of ``result``."""
    return Row(
        case=result.case,
        baseline_label=result.baseline_label,
        unit=result.unit,
        baseline_median=_median(result.baseline),
        ours_median=_median(result.ours),
        speedup=result.speedup,
        baseline_iqr=iqr(result.baseline),
        ours_iqr=iqr(result.ours),
        runs=min(len(result.baseline), len(result.ours)),
    )


def _num(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "n/a"


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.case,
        row.baseline_label,
        row.unit,
        _num(row.baseline_median),
        _num(row.ours_median),
        f"{_num(row.speedup)}x" if math.isfinite(row.speedup) else "n/a",
        f"{_num(row.baseline_iqr)} / {_num(row.ours_iqr)}",
        str(row.runs),
    )


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table, one line per case; just the header when there are none."""
    lines = [_HEADERS, *(_cells(summarize(result)) for result in results)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADERS))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in text)


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null, also inside lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _record(result: Result) -> dict[str, Any]:
    merged = {**asdict(result), **asdict(summarize(result))}
    return {key: _json_safe(value) for key, value in merged.items()}


def to_json(results: Sequence[Result], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON record of a run: ``meta`` (date, machine, versions, ...) plus every result."""
    records = [_record(result) for result in results]
    return {**meta, "speedup_convention": SPEEDUP_LABEL, "results": records}


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` atomically (``<path>.tmp`` then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)


def write_chart(path: Path, results: Sequence[Result], title: str) -> None:
    """A horizontal bar chart of each case's speedup, with the break-even line at 1x."""
    rows = [summarize(result) for result in results]
    # A bare Figure renders with Agg and never touches pyplot's global state.
    fig = Figure(figsize=(9, 1.5 + 0.45 * max(len(rows), 1)))
    _draw(fig.add_subplot(), rows, title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")


def _draw(ax: Axes, rows: Sequence[Row], title: str) -> None:
    """Bars grow from 1x: right when Flotilla wins, left when it loses (log scale)."""
    ax.set_title(title)
    ax.set_xlabel(SPEEDUP_LABEL)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    values = [row.speedup for row in rows if math.isfinite(row.speedup) and row.speedup > 0]
    low, high = min([0.5, *values]) / 1.5, max([2.0, *values]) * 1.5
    ax.set_xlim(low, high)
    ax.set_xticks([tick for tick in _TICKS if low <= tick <= high])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if not rows:
        ax.text(0.5, 0.5, "no results", transform=ax.transAxes, ha="center", va="center")
        return
    labels = [f"{row.case} (vs {row.baseline_label})" for row in rows]
    speedups = [
        row.speedup if math.isfinite(row.speedup) and row.speedup > 0 else 1.0 for row in rows
    ]
    colors = ["tab:green" if value >= 1.0 else "tab:red" for value in speedups]
    bars = ax.barh(labels, [value - 1.0 for value in speedups], left=1.0, color=colors)
    ax.bar_label(bars, labels=[_cells(row)[5] for row in rows], padding=3)
    ax.invert_yaxis()
