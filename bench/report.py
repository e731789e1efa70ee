"""From a run's results (plain dicts, as written to ``latest.json``) to ratios and Markdown tables.

Pure functions: the same results always give the same report, so ``docs/benchmarks.md`` can be
regenerated from ``bench/results/latest.json`` with ``python -m bench.report``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.stats import fmt, markdown_table, ratio


def _get(tree: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def ratios(baselines: dict[str, Any], end_to_end: dict[str, Any]) -> dict[str, float | None]:
    """ChaSe's acked messages/s divided by the ceilings measured in the same run."""
    fleet = _get(end_to_end, "fleet", "acked_per_s")
    embedded = _get(end_to_end, "embedded", "acked_per_s")
    return {
        "fleet_vs_broker": ratio(fleet, _get(baselines, "broker", "msgs_per_s")),
        "fleet_vs_broker_one_publisher": ratio(fleet, _get(baselines, "broker_serial", "msgs_per_s")),
        "fleet_vs_mariadb_insert": ratio(fleet, _get(baselines, "mariadb_insert", "rows_per_s")),
        "fleet_vs_mariadb_store_batch": ratio(fleet, _get(baselines, "mariadb_store_batch", "rows_per_s")),
        "fleet_vs_worker_alone": ratio(fleet, _get(baselines, "worker_drain", "msgs_per_s")),
        "embedded_vs_sqlite_insert": ratio(embedded, _get(baselines, "sqlite_insert", "rows_per_s")),
        "embedded_vs_sqlite_store_batch": ratio(embedded, _get(baselines, "sqlite_store_batch", "rows_per_s")),
        "embedded_vs_fleet": ratio(embedded, fleet),
    }


RATIO_LABELS = {
    "fleet_vs_broker": "fleet acked msgs/s ÷ broker baseline msgs/s",
    "fleet_vs_broker_one_publisher": "fleet acked msgs/s ÷ broker, one publisher",
    "fleet_vs_mariadb_insert": "fleet acked msgs/s ÷ MariaDB bulk INSERT rows/s",
    "fleet_vs_mariadb_store_batch": "fleet acked msgs/s ÷ MariaDB store_batch rows/s",
    "fleet_vs_worker_alone": "fleet acked msgs/s ÷ persistence worker alone msgs/s",
    "embedded_vs_sqlite_insert": "embedded acked msgs/s ÷ SQLite bulk INSERT rows/s",
    "embedded_vs_sqlite_store_batch": "embedded acked msgs/s ÷ SQLite store_batch rows/s",
    "embedded_vs_fleet": "embedded acked msgs/s ÷ fleet acked msgs/s",
}


def _ms(summary: dict[str, Any] | None, key: str) -> str:
    return fmt(_get(summary, key), 1)


def baseline_rows(base: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, label in (("broker", "RabbitMQ: confirmed publish → quorum queue → ack"),
                       ("broker_serial", "RabbitMQ: the same, one publisher")):
        b = base.get(key)
        if b:
            publishers = f"{b['publishers']} publisher" + ("s" if b["publishers"] != 1 else "")
            rows.append([f"{label} ({publishers}, {b['messages']:,} msgs)",
                         fmt(b["msgs_per_s"]) + " msgs/s",
                         f"confirm p50 {_ms(b['publish_confirm'], 'p50_ms')} ms, "
                         f"p99 {_ms(b['publish_confirm'], 'p99_ms')} ms"])
    for key, label in (("mariadb_insert", "MariaDB: bulk INSERT"), ("sqlite_insert", "SQLite: bulk INSERT"),
                       ("mariadb_store_batch", "MariaDB: ChaSe store_batch, no bus"),
                       ("sqlite_store_batch", "SQLite: ChaSe store_batch, no bus")):
        b = base.get(key)
        if b:
            rows.append([f"{label} ({b['rows']:,} rows, batches of {b['batch']})",
                         fmt(b["rows_per_s"]) + " rows/s",
                         f"per batch p50 {_ms(b['batch_commit'], 'p50_ms')} ms, "
                         f"p99 {_ms(b['batch_commit'], 'p99_ms')} ms"])
    b = base.get("worker_drain")
    if b:
        rows.append([f"ChaSe persistence worker alone, full queue ({b['messages']:,} msgs, RabbitMQ + MariaDB)",
                     fmt(b["msgs_per_s"]) + " msgs/s",
                     f"mean batch {fmt(_get(b, 'batches', 'mean'), 1)}; time in store_batch "
                     f"{fmt(_pct(b['store_share']))}%, in publishing stored events {fmt(_pct(b['publish_share']))}% "
                     f"(per batch p50 {_ms(b['publish_confirm'], 'p50_ms')} ms)"])
    return rows


def _pct(share: float | None) -> float | None:
    return None if share is None else share * 100


def end_to_end_rows(e2e: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, label in (("fleet", "fleet (processes, RabbitMQ, MariaDB)"), ("embedded", "embedded (chase serve)")):
        r = e2e.get(key)
        if not r:
            rows.append([label] + ["failed"] + [""] * 8)
            continue
        rows.append(_load_row(label, r))
    for key, label in (("fleet", "fleet, one message in flight"), ("embedded", "embedded, one message in flight")):
        r = _get(e2e, key, "unloaded")
        if r:
            rows.append(_load_row(label, r))
    return rows


def _load_row(label: str, r: dict[str, Any]) -> list[str]:
    return [
        label,
        fmt(r["acked_per_s"]),
        _ms(r["ack_latency"], "p50_ms"),
        _ms(r["ack_latency"], "p95_ms"),
        _ms(r["ack_latency"], "p99_ms"),
        _ms(r["delivery_latency"], "p50_ms"),
        _ms(r["delivery_latency"], "p99_ms"),
        fmt(r["deliveries_per_s"]),
        fmt(_get(r, "stored_batches", "mean"), 1),
        f"{r['acked']:,}/{r['messages']:,}" + ("" if r["complete"] else " (incomplete)"),
    ]


def cpu_rows(e2e: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key in ("fleet", "embedded"):
        cpu = _get(e2e, key, "cpu") or {}
        acked = _get(e2e, key, "acked")
        for name, used in cpu.items():
            per_message = ratio(used["cpu_seconds"] * 1000, acked)
            rows.append([key, name, fmt(used["cpu_seconds"], 1), fmt(used["cores"], 2), fmt(per_message, 2)])
    return rows


def render(results: dict[str, Any]) -> str:
    """The report as Markdown: baselines, end to end, ratios, CPU per process."""
    load = _get(results, "plan", "load") or {}
    parts = [
        f"## ChaSe benchmark, {results.get('date')} ({_get(results, 'plan', 'mode')} run"
        + (", services under cProfile: not comparable" if _get(results, "plan", "profiled") else "")
        + (f", settings {_get(results, 'plan', 'overrides')}" if _get(results, "plan", "overrides") else "")
        + ")",
        "",
        "### Baselines (infrastructure ceilings on this machine)",
        "",
        markdown_table(["measurement", "result", "detail"], baseline_rows(results.get("baselines", {})),
                       align="lrl"),
        "",
        f"### End to end over WSS: {load.get('senders')} senders × {load.get('messages_per_sender')} messages "
        f"(window {load.get('window')}), {load.get('receivers')} receivers",
        "",
        markdown_table(
            ["system", "acked msgs/s", "ack p50 ms", "ack p95 ms", "ack p99 ms", "delivery p50 ms",
             "delivery p99 ms", "deliveries/s", "mean batch", "acked"],
            end_to_end_rows(results.get("end_to_end", {})),
        ),
        "",
        "### Ratios (same run)",
        "",
        markdown_table(["ratio", "value"], [[RATIO_LABELS.get(k, k), fmt(v, 3)]
                                            for k, v in (results.get("ratios") or {}).items()]),
        "",
        "### CPU during the measured phase",
        "",
        markdown_table(["system", "process", "CPU s", "cores", "CPU ms per acked message"],
                       cpu_rows(results.get("end_to_end", {})), text_columns=2),
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Print the report of a results file (default ``bench/results/latest.json``)."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results" / "latest.json"
    print(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
