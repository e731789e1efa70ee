"""A smoke run of the fan-out benchmark: its own processes, real TLS sockets, tiny counts.

Checks that the benchmark still runs end to end and reports what it measured (every delivery
counted, the storm back, the report and the plot rendered): no figure is asserted, timings
belong to the benchmark's report, not to a test.
"""

from __future__ import annotations

from pathlib import Path

from bench import fanout, systems
from bench.report import plot_fanout, render_fanout
from chase.tls import client_context


async def test_the_fan_out_benchmark_runs_against_the_bare_ceiling(tmp_path: Path, dev_certs: Path) -> None:
    plan = fanout.FanoutPlan(sizes=(5,), senders=1, first_rate=50, max_steps=2, step_seconds=0.3,
                             drain_seconds=5.0)
    async with systems.bare(tmp_path / "bare", dev_certs) as running:
        result = await fanout.measure_system("bare", running.gateway_url, client_context(running.ca_path),
                                             [None] * 5, [None], [running.pids["bare"]], plan, synced=False)
    assert running.problems == []
    entry = result["sizes"]["5"]
    assert entry["steps"], "no step ran"
    for step in entry["steps"]:
        assert step["sent"] > 0 and step["deliveries"] == step["expected"] == step["sent"] * 5
        assert step["latency"]["count"] == step["deliveries"]
    storm = entry["storm"]
    assert storm["hellos"] == 5 and storm["refused"] == {} and storm["error"] is None
    results = {"date": "smoke", "plan": {"fanout": dict(plan.__dict__)}, "fanout": {"bare": result}}
    assert "| bare websockets (ceiling) | 5 |" in render_fanout(results)
    plot = plot_fanout(results, tmp_path / "fanout.png")
    assert plot is None or plot.stat().st_size > 0  # None: matplotlib is not installed
