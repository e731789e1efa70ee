"""A smoke run of the fan-out benchmark: its own processes, real TLS sockets, tiny counts.

Checks that the benchmark still runs end to end (against the bare server, and against Prosody
when it is installed: skipped with the reason otherwise) and reports what it measured (every delivery
counted, the storm back, the report and the plot rendered): no figure is asserted, timings
belong to the benchmark's report, not to a test.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bench import fanout, prosody, systems
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


async def test_the_fan_out_benchmark_runs_against_prosody(tmp_path: Path, dev_certs: Path) -> None:
    """Prosody (Debian's package, started by the benchmark with its own config) under the same
    workload: five members of a MUC room with its archive on, over direct TLS."""
    reason = prosody.unavailable()
    if reason:
        pytest.skip(reason)
    plan = fanout.FanoutPlan(sizes=(5,), senders=1, first_rate=50, max_steps=2, step_seconds=0.3,
                             drain_seconds=5.0)
    users = [f"smoke_{i}" for i in range(6)]
    async with prosody.running(dev_certs) as server:
        context = client_context(server.ca_path)
        await prosody.register(server.port, context, users, "smoke-password")
        result = await fanout.measure_system("prosody", "", context, users[1:], users[:1], [server.pid], plan,
                                             synced=True, driver=prosody.XmppDriver(server.port, context,
                                                                                    "smoke-password"))
        archived = _archived(server.directory / "prosody.sqlite")
    assert server.problems == []
    assert not server.directory.exists(), "the temporary folder outlived the run"
    entry = result["sizes"]["5"]
    assert entry["steps"], "no step ran"
    for step in entry["steps"]:
        assert step["sent"] > 0 and step["deliveries"] == step["expected"] == step["sent"] * 5
        assert step["latency"]["count"] == step["deliveries"]
    assert archived == sum(step["sent"] for step in entry["steps"]), "the room's archive missed messages"
    storm = entry["storm"]
    assert storm["hellos"] == 5 and storm["synced"] == 5 and storm["refused"] == {} and storm["error"] is None
    results = {"date": "smoke", "plan": {"fanout": dict(plan.__dict__)}, "fanout": {"prosody": result}}
    assert "| Prosody | 5 |" in render_fanout(results)


def _archived(database: Path) -> int:
    """Messages in the room's archive (mod_muc_mam's store in Prosody's SQLite database)."""
    with closing(sqlite3.connect(database)) as db:
        return db.execute("SELECT count(*) FROM prosodyarchive WHERE store = 'muc_log'").fetchone()[0]


def test_the_report_says_why_prosody_was_skipped() -> None:
    side = {"prosody": {"system": "prosody", "skipped": "prosody is not installed", "sizes": {}}}
    report = render_fanout({"date": "smoke", "plan": {"fanout": {}}, "fanout": side})
    assert "| Prosody |  | skipped: prosody is not installed |" in report


async def test_fan_out_receivers_told_to_try_again_while_seated_try_again(dev_certs: Path) -> None:
    """A receiver closed 1013 ("try again later") while being seated comes back, as a client
    does, and is counted as seated on a later try; with one try (the storm) it stays refused."""
    from websockets.asyncio.server import ServerConnection, serve

    from chase.tls import server_context

    seen: set[str] = set()

    async def handler(ws: ServerConnection) -> None:
        token = ws.request.headers.get("Authorization", "") if ws.request else ""
        if token not in seen:
            seen.add(token)
            await ws.close(1013, "try again later")
            return
        await ws.send('{"type":"hello"}')
        await ws.wait_closed()

    context = server_context(dev_certs / "server.pem", dev_certs / "server-key.pem")
    async with serve(handler, "127.0.0.1", 0, ssl=context, compression=None) as server:
        url = f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        tally = fanout.Tally()
        seated = await fanout.open_receivers(url, client_context(dev_certs / "ca.pem"), ["a", "b"], tally,
                                             tries=fanout.SEAT_TRIES)
        assert tally.hellos == 2 and tally.closes == {} and tally.retried == {"try 2": 2}
        assert len(seated) == 2 and all(r.upgraded and not r.closed.done() for r in seated)
        fanout.close_receivers(seated)
        once = fanout.Tally()
        refused = await fanout.open_receivers(url, client_context(dev_certs / "ca.pem"), ["c"], once)
        assert once.hellos == 0 and once.closes == {"1013": 1} and once.retried == {}
        fanout.close_receivers(refused)
