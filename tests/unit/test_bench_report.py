"""The benchmark report's arithmetic: percentiles, rates, ratios, batch sizes, tables.

Plain numbers in, plain numbers out: nothing here is timed, so nothing here can be flaky.
"""

from __future__ import annotations

import pytest

from bench.report import RATIO_LABELS, ratios, render
from bench.stats import batch_sizes, latency_summary, markdown_table, percentile, rate, ratio


def test_percentile_is_nearest_rank_and_returns_an_observed_value() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order of the input does not matter
    assert percentile([7.5], 99) == 7.5
    assert percentile([], 50) is None


@pytest.mark.parametrize("q", [0, -1, 100.1])
def test_percentile_refuses_a_rank_outside_0_to_100(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_latency_summary_reports_milliseconds() -> None:
    summary = latency_summary([0.001, 0.002, 0.003, 0.004])
    assert summary == {"count": 4, "p50_ms": 2.0, "p95_ms": 4.0, "p99_ms": 4.0, "max_ms": 4.0}
    assert latency_summary([]) == {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}


def test_rate_and_ratio_say_none_when_nothing_was_measured() -> None:
    assert rate(500, 2.0) == 250.0
    assert rate(0, 2.0) is None
    assert rate(10, 0.0) is None
    assert rate(10, None) is None
    assert ratio(450.0, 900.0) == 0.5
    assert ratio(None, 900.0) is None
    assert ratio(450.0, None) is None
    assert ratio(450.0, 0.0) is None


def test_batch_sizes() -> None:
    assert batch_sizes([200, 100, 30]) == {"batches": 3, "mean": 110.0, "p50": 100, "max": 200}
    assert batch_sizes([]) == {"batches": 0, "mean": None, "p50": None, "max": None}


def test_markdown_table_aligns_and_checks_the_row_width() -> None:
    table = markdown_table(["what", "value"], [["a", "1"], ["b", "2"]])
    assert table.splitlines() == ["| what | value |", "|:---|---:|", "| a | 1 |", "| b | 2 |"]
    with pytest.raises(ValueError):
        markdown_table(["what", "value"], [["only one cell"]])
    assert markdown_table(["a", "b", "c"], [], align="lrl").splitlines()[1] == "|:---|---:|:---|"
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [], align="l")


def test_ratios_divide_chase_by_the_baselines_of_the_same_run() -> None:
    base = {
        "broker": {"msgs_per_s": 1600.0},
        "broker_serial": {"msgs_per_s": 800.0},
        "mariadb_insert": {"rows_per_s": 20000.0},
        "sqlite_insert": {"rows_per_s": 40000.0},
        "worker_drain": {"msgs_per_s": 1000.0},
    }
    e2e = {"fleet": {"acked_per_s": 400.0}, "embedded": {"acked_per_s": 1000.0}}
    result = ratios(base, e2e)
    assert result["fleet_vs_broker"] == 0.25
    assert result["fleet_vs_broker_one_publisher"] == 0.5
    assert result["fleet_vs_mariadb_insert"] == 0.02
    assert result["fleet_vs_worker_alone"] == 0.4
    assert result["embedded_vs_sqlite_insert"] == 0.025
    assert result["embedded_vs_fleet"] == 2.5
    # A baseline that failed leaves its ratios unmeasured rather than invented.
    assert result["fleet_vs_mariadb_store_batch"] is None
    assert set(result) == set(RATIO_LABELS)


def test_a_run_whose_end_to_end_part_failed_still_renders() -> None:
    results = {
        "date": "2026-01-01T00:00:00Z",
        "plan": {"mode": "quick", "load": {"senders": 8, "messages_per_sender": 50, "window": 32, "receivers": 4}},
        "baselines": {},
        "end_to_end": {"fleet": None, "embedded": None},
        "ratios": ratios({}, {}),
    }
    text = render(results)
    assert "| fleet (processes, RabbitMQ, MariaDB) | failed |" in text
    assert "n/a" in text
