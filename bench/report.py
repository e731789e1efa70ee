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
                       ("broker_serial", "RabbitMQ: the same, one publisher"),
                       ("broker_in_flight", "RabbitMQ: the same, one confirm awaited per publisher"),
                       ("broker_classic", "RabbitMQ, for comparison: the same into a classic queue")):
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
        if key not in e2e:
            continue
        r = e2e[key]
        if not r:
            rows.append([label] + ["failed"] + [""] * 9)
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
        fmt(_get(r, "submission_groups", "mean"), 1),
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
             "delivery p99 ms", "deliveries/s", "mean batch", "sends per publish", "acked"],
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
    fan = render_fanout(results)
    if fan:
        parts += ["", fan]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Print the report of a results file (default ``bench/results/latest.json``); with
    ``--plot PNG``, also plot its fan-out side by side there."""
    argv = sys.argv[1:] if argv is None else argv
    plot = None
    if "--plot" in argv:
        i = argv.index("--plot")
        plot = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results" / "latest.json"
    results = json.loads(path.read_text())
    print(render(results))
    if plot is not None and plot_fanout(results, plot) is None:
        print("no plot: matplotlib is not installed, or the results have no fan-out", file=sys.stderr)
        return 1
    return 0


# --- fan-out side by side ------------------------------------------------------------------------

FANOUT_LABELS = {"bare": "bare websockets (ceiling)", "embedded": "ChaSe embedded", "fleet": "ChaSe fleet",
                 "prosody": "Prosody"}


def best_step(steps: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The highest deliveries/s among the steps that kept up (ratio >= 0.95 and p99 <= 1 s)."""
    good = [s for s in steps or [] if not s.get("saturated")]
    return max(good, key=lambda s: s["deliveries_per_s"]) if good else None


def fanout_rows(side: dict[str, Any]) -> list[list[str]]:
    """One row per system and room size: the best rate that kept up, its p99 and CPU, and how
    it compares with the bare ceiling at the same size, in the same run."""
    rows = []
    for name, result in side.items():
        label = FANOUT_LABELS.get(name, name)
        if not result:
            rows.append([label, "", "failed", "", "", "", "", "", ""])
            continue
        if result.get("skipped"):
            rows.append([label, "", "skipped: " + result["skipped"], "", "", "", "", "", ""])
            continue
        for n, entry in result["sizes"].items():
            best = best_step(entry["steps"])
            ceiling = best_step(_get(side, "bare", "sizes", n, "steps"))
            last = entry["steps"][-1] if entry["steps"] else None
            rows.append([
                label, n,
                fmt(_get(best, "deliveries_per_s")),
                _ms(_get(best, "latency"), "p99_ms"),
                fmt(_get(best, "server_us_per_delivery"), 1),
                fmt(ratio(_get(best, "deliveries_per_s"), _get(ceiling, "deliveries_per_s")), 2),
                (f"{fmt(last['offered_deliveries_per_s'])}: ratio {fmt(last['ratio'], 2)}, "
                 f"p99 {_ms(last['latency'], 'p99_ms')} ms" + (" (saturated)" if last.get("saturated") else ""))
                if last else "n/a",
                fmt(entry.get("idle_kib_per_connection"), 1),
                fmt(_get(best, "client_cores"), 2),
            ])
    return rows


def versus_rows(side: dict[str, Any], baseline: str = "prosody") -> list[list[str]]:
    """ChaSe against another system measured in the same run, per room size: ChaSe's best rate
    that kept up ÷ the other's (when the other kept up with no step, its best rate delivered while
    saturated, marked ``*``), and the server CPU per delivery at the first step (the same offered
    load for both): the other's ÷ ChaSe's (> 1: ChaSe is cheaper)."""
    rows = []
    other = side.get(baseline) or {}
    for name in ("embedded", "fleet"):
        for n, entry in ((side.get(name) or {}).get("sizes") or {}).items():
            mine = best_step(entry["steps"])
            their_steps = _get(other, "sizes", n, "steps") or []
            theirs, mark = best_step(their_steps), ""
            if theirs is None and their_steps:
                theirs, mark = max(their_steps, key=lambda s: s["deliveries_per_s"]), "*"
            # A step during which ChaSe refused connects measured the refusals too: not comparable.
            first_mine = entry["steps"][0] if entry["steps"] and not entry["steps"][0]["closes"] else None
            first_theirs = their_steps[0] if their_steps else None
            rows.append([FANOUT_LABELS.get(name, name), n,
                         fmt(_get(mine, "deliveries_per_s")),
                         fmt(_get(theirs, "deliveries_per_s")) + mark,
                         fmt(ratio(_get(mine, "deliveries_per_s"), _get(theirs, "deliveries_per_s")), 2) + mark,
                         fmt(ratio(_get(first_theirs, "server_us_per_delivery"),
                                   _get(first_mine, "server_us_per_delivery")), 2)])
    return rows


def storm_rows(side: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, result in side.items():
        for n, entry in ((result or {}).get("sizes") or {}).items():
            storm = entry.get("storm")
            if not storm:
                continue
            refused = sum(storm["refused"].values())
            rows.append([FANOUT_LABELS.get(name, name), n, fmt(entry.get("connect_seconds"), 1),
                         fmt(storm["all_hello_seconds"], 2), fmt(storm["all_synced_seconds"], 2),
                         f"{storm['hellos']:,}", "n/a" if storm["synced"] is None else f"{storm['synced']:,}",
                         f"{refused:,}" + (f" {storm['refused']}" if refused else ""),
                         storm.get("error") or ""])
    return rows


def render_fanout(results: dict[str, Any]) -> str:
    side = results.get("fanout") or {}
    if not side:
        return ""
    plan = _get(results, "plan", "fanout") or {}
    return "\n".join([
        f"### Public fan-out side by side: N receivers, {plan.get('senders')} senders, the rate doubled from "
        f"{fmt(plan.get('first_rate'))} deliveries/s every {plan.get('step_seconds')} s until saturation",
        "",
        markdown_table(["system", "N", "max deliveries/s kept up", "p99 ms there", "server CPU µs per delivery",
                        "÷ bare ceiling", "last step offered", "idle KiB per connection",
                        "load generator cores there"],
                       fanout_rows(side), text_columns=2, align="lrrrrrlrr"),
        "",
        *_versus(side),
        "### Reconnect storm (every receiver dropped, then all back at once)",
        "",
        markdown_table(["system", "N", "first connect s (10 at a time)", "all hello s", "all synced s", "hellos",
                        "synced", "refused", "error"], storm_rows(side), text_columns=2, align="lrrrrrrll"),
    ])


def _versus(side: dict[str, Any]) -> list[str]:
    if not (side.get("prosody") or {}).get("sizes"):
        return []
    return ["### ChaSe ÷ Prosody (same run)", "",
            markdown_table(["system", "N", "ChaSe max deliveries/s kept up", "Prosody's", "÷ Prosody's",
                            "server CPU per delivery at the first step: Prosody's ÷ ChaSe's"],
                           versus_rows(side), text_columns=2, align="lrrrrr"),
            "", "\\* Prosody kept up with no step: its best rate delivered while saturated.", ""]


def plot_fanout(results: dict[str, Any], path: Path) -> Path | None:
    """Deliveries/s and p99 against offered load, per system and N (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    side = results.get("fanout") or {}
    sizes = sorted({n for r in side.values() if r for n in r.get("sizes") or {}}, key=int)
    if not sizes:
        return None
    fig, axes = plt.subplots(2, len(sizes), figsize=(6 * len(sizes), 8), squeeze=False)
    for col, n in enumerate(sizes):
        every: list[float] = []
        for name, result in side.items():
            steps = _get(result, "sizes", n, "steps") or []
            if not steps:
                continue
            offered = [s["offered_deliveries_per_s"] for s in steps]
            every += offered
            label = FANOUT_LABELS.get(name, name)
            axes[0][col].plot(offered, [s["deliveries_per_s"] for s in steps], marker="o", label=label)
            axes[1][col].plot(offered, [s["latency"]["p99_ms"] or float("nan") for s in steps], marker="o",
                              label=label)
        if every:
            axes[0][col].plot([min(every), max(every)], [min(every), max(every)], ":", color="grey",
                              label="offered")
        axes[0][col].set_title(f"N = {n}: deliveries/s")
        axes[1][col].set_title(f"N = {n}: p99 latency (ms)")
        axes[1][col].axhline(1000, color="grey", linestyle=":")
        for row in (0, 1):
            axes[row][col].set_xscale("log")
            axes[row][col].set_yscale("log")
            axes[row][col].set_xlabel("offered deliveries/s")
            axes[row][col].legend(fontsize="small")
    fig.suptitle(f"Public fan-out, {results.get('date')}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
