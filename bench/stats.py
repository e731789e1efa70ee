"""Pure arithmetic of a benchmark report: percentiles, rates, ratios and the Markdown table.

No I/O and no clock here, so it is tested with plain numbers (``tests/unit/test_bench_report.py``).
Every figure a report shows is derived from counts and timestamps the run measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; None when empty.

    Nearest rank returns a value that was actually observed: p99 of 100 samples is the 99th
    smallest, never an interpolation between two.
    """
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def latency_summary(seconds: Sequence[float], quantiles: Iterable[float] = PERCENTILES) -> dict[str, Any]:
    """Count, the given percentiles and the maximum of latencies in seconds, reported in ms."""
    summary: dict[str, Any] = {"count": len(seconds)}
    for q in quantiles:
        value = percentile(seconds, q)
        summary[f"p{q:g}_ms"] = None if value is None else round(value * 1000, 2)
    summary["max_ms"] = round(max(seconds) * 1000, 2) if seconds else None
    return summary


def rate(count: int, seconds: float | None) -> float | None:
    """``count`` per second over ``seconds``; None when nothing was timed."""
    if seconds is None or seconds <= 0 or count <= 0:
        return None
    return count / seconds


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either side was not measured."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def batch_sizes(counts: Sequence[int]) -> dict[str, Any]:
    """How many rows each stored batch held (one batch shares one ``created_at``)."""
    if not counts:
        return {"batches": 0, "mean": None, "p50": None, "max": None}
    return {
        "batches": len(counts),
        "mean": round(sum(counts) / len(counts), 1),
        "p50": percentile(counts, 50),
        "max": max(counts),
    }


def fmt(value: float | None, digits: int = 0) -> str:
    """A figure for a table: thousands separated, ``n/a`` when it was not measured."""
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, text_columns: int = 1,
                   align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table: the first ``text_columns`` left-aligned, figures right,
    unless ``align`` gives one letter per column (``l`` or ``r``)."""
    align = align or "l" * text_columns + "r" * (len(header) - text_columns)
    if len(align) != len(header):
        raise ValueError(f"align has {len(align)} letters, header has {len(header)} columns")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|",
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row has {len(row)} cells, header has {len(header)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
