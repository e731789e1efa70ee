"""Run the benchmark suite: baselines and ChaSe end to end, in one run, on this machine.

    .venv/bin/python -m bench.run            # full run, under 2 minutes on 2 cores
    .venv/bin/python -m bench.run --quick    # a smoke run, well under a minute

Needs MariaDB (``--mariadb``, default root@127.0.0.1:3306) and RabbitMQ (``--amqp``, default
guest@127.0.0.1:5672). The run makes its own databases (``chase_bench_<id>_*``) and bus
namespace (``bench-<id>``) and removes them at the end, whatever happens. It prints Markdown
tables and writes ``bench/results/latest.json``. Performance is reported as ratios of ChaSe to
the infrastructure baselines measured in the same run; see ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import baselines, fanout, infra, machine, prosody, stages, systems
from bench.load import LoadPlan, run_load
from bench.report import ratios, render
from bench.stats import batch_sizes

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
DEFAULT_MARIADB = "mysql+asyncmy://root@127.0.0.1:3306"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run in well under a minute")
    parser.add_argument("--senders", type=int, default=8, help="sending connections (default 8)")
    parser.add_argument("--receivers", type=int, default=4, help="reading-only connections (default 4)")
    parser.add_argument("--messages", type=int, default=None, help="messages per sender (default 1000, quick 50)")
    parser.add_argument("--window", type=int, default=32, help="unacknowledged sends per sender (default 32)")
    parser.add_argument("--no-compression", action="store_true",
                        help="clients do not offer permessage-deflate (ChaSe's client does)")
    parser.add_argument("--set", action="append", default=[], metavar="CHASE_NAME=VALUE", dest="overrides",
                        help="a setting for the system under test, e.g. CHASE_PERSISTENCE_BATCH_WAIT_SECONDS=0 "
                             "(repeatable; recorded in the results)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="run the services under cProfile, writing <service>.prof files to DIR "
                             "(slows them down: the figures of such a run are not comparable)")
    parser.add_argument("--only", choices=("all", "write-path", "fan-out"), default="all",
                        help="run only the write path (baselines, acked messages) or only the fan-out side by side")
    parser.add_argument("--fanout-sizes", default=None, metavar="N,N",
                        help="room sizes of the fan-out side by side (default 200,1000; quick 50,200)")
    parser.add_argument("--fanout-systems", default="bare,embedded,fleet,prosody", metavar="NAMES",
                        help="systems of the fan-out side by side, of bare, embedded, fleet and prosody "
                             "(default all four; prosody is skipped, with the reason, when it is not installed)")
    parser.add_argument("--write-systems", default="fleet,embedded", metavar="NAMES",
                        help="systems measured end to end on the write path (default fleet,embedded)")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR", dest="py_spy",
                        help="sample the server processes with py-spy (the fan-out systems', and the write path's "
                             "fleet gateway and persistence worker; collapsed stacks in DIR; costs them a little CPU)")
    parser.add_argument("--system-root", type=Path, default=None, metavar="DIR",
                        help="run ChaSe's processes from this source tree (e.g. an older commit, to measure "
                             "before and after in one sitting); default: this one")
    parser.add_argument("--mariadb", default=DEFAULT_MARIADB, help="MariaDB server URL, without a database")
    parser.add_argument("--amqp", default=DEFAULT_AMQP, help="RabbitMQ URL")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    return parser


def _overrides(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("CHASE_"):
            raise SystemExit(f"--set wants CHASE_NAME=VALUE, got {pair!r}")
        settings[name] = value
    return settings


def _plan(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    sizes = args.fanout_sizes or ("50,200" if quick else "200,1000")
    return {
        "mode": "quick" if quick else "full",
        "only": args.only,
        "fanout": fanout.FanoutPlan(
            sizes=tuple(int(n) for n in sizes.split(",")),
            first_rate=1_000 if quick else 2_000,
            max_steps=3 if quick else 7,
            step_seconds=1.0 if quick else 3.0,
            drain_seconds=1.0 if quick else 2.0,
        ),
        "fanout_systems": args.fanout_systems.split(","),
        "overrides": _overrides(args.overrides),
        "profiled": args.profile is not None,
        "broker_messages": 2_000 if quick else 20_000,
        "broker_serial_messages": 1_000 if quick else 5_000,
        "db_rows": 4_000 if quick else 20_000,
        "db_batch": 200,
        "drain_messages": 1_000 if quick else 5_000,
        "load": LoadPlan(
            senders=args.senders,
            receivers=args.receivers,
            messages_per_sender=args.messages or (50 if quick else 1000),
            window=args.window,
            time_limit=20.0 if quick else 60.0,
            compression=None if args.no_compression else "deflate",
        ),
        # One message in flight at a time: the latency of the path itself, without queueing.
        "unloaded": LoadPlan(
            senders=1, receivers=1, messages_per_sender=50 if quick else 200, window=1, warmup_per_sender=2,
            time_limit=20.0 if quick else 30.0, tag="b", compression=None if args.no_compression else "deflate",
        ),
    }


class Suite:
    """One run: its id, its corner of the shared servers, and everything it measured."""

    def __init__(self, args: argparse.Namespace, argv: list[str]) -> None:
        self.args = args
        self.argv = argv
        self.plan = _plan(args)
        self.run_id = uuid.uuid4().hex[:8]
        self.namespace = f"bench-{self.run_id}"
        self.databases: list[str] = []
        self.errors: dict[str, str] = {}

    def database(self, purpose: str) -> str:
        name = f"chase_bench_{self.run_id}_{purpose}"
        url = infra.create_database(self.args.mariadb, name)
        self.databases.append(name)
        return url

    async def section(self, name: str, coro) -> Any:  # noqa: ANN001
        """Run one measurement; a failure is reported and the others still run."""
        started = time.perf_counter()
        print(f"... {name}", file=sys.stderr, flush=True)
        try:
            return await coro
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            return None
        finally:
            print(f"    {name}: {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)

    async def run(self, workdir: Path) -> dict[str, Any]:
        from chase.tls import ensure_dev_certs

        certs = workdir / "certs"
        ensure_dev_certs(certs)
        info = machine.describe()
        info["mariadb"] = await self.section("mariadb version", asyncio.to_thread(infra.mariadb_version,
                                                                                  self.args.mariadb))
        info["rabbitmq"] = await self.section("rabbitmq version", infra.rabbitmq_version(self.args.amqp))
        load: LoadPlan = self.plan["load"]
        base: dict[str, Any] = {}
        e2e: dict[str, Any] = {"fleet": None, "embedded": None}
        side: dict[str, Any] = {}
        if self.args.only in ("all", "fan-out"):
            for name in self.plan["fanout_systems"]:
                side[name] = await self.section(f"fan-out side by side: {name}", self._side_by_side(name, workdir,
                                                                                                   certs))
        if self.args.only == "fan-out":
            return self._results(info, base, e2e, side)
        base["broker"] = await self.section("broker baseline", baselines.broker_baseline(
            self.args.amqp, self.namespace, messages=self.plan["broker_messages"], publishers=load.senders))
        base["broker_serial"] = await self.section("broker baseline, one publisher", baselines.broker_baseline(
            self.args.amqp, self.namespace, messages=self.plan["broker_serial_messages"], publishers=1))
        # As many publishers as the load keeps sends in flight (8 x 32): what a gateway that does
        # not wait for one send's confirm before reading the next could ask of the broker.
        base["broker_in_flight"] = await self.section("broker baseline, as many in flight as the load",
                                                      baselines.broker_baseline(
            self.args.amqp, self.namespace, messages=self.plan["broker_messages"],
            publishers=load.senders * load.window))
        base["broker_classic"] = await self.section("broker baseline, classic queue", baselines.broker_baseline(
            self.args.amqp, self.namespace, messages=self.plan["broker_messages"], publishers=load.senders,
            queue_type="classic"))
        rows, batch = self.plan["db_rows"], self.plan["db_batch"]
        base["mariadb_insert"] = await self.section("mariadb insert baseline", self._on_mariadb(
            baselines.insert_baseline, "raw", rows=rows, batch=batch))
        base["sqlite_insert"] = await self.section("sqlite insert baseline", baselines.insert_baseline(
            f"sqlite+aiosqlite:///{workdir / 'raw.db'}", rows=rows, batch=batch))
        base["mariadb_store_batch"] = await self.section("mariadb store_batch", self._on_mariadb(
            baselines.store_batch_baseline, "store", rows=rows, batch=batch))
        base["sqlite_store_batch"] = await self.section("sqlite store_batch", baselines.store_batch_baseline(
            f"sqlite+aiosqlite:///{workdir / 'store.db'}", rows=rows, batch=batch))
        base["worker_drain"] = await self.section("persistence worker alone", self._drain())

        wanted = self.args.write_systems.split(",")
        e2e = {}  # a system left out (--write-systems) is left out of the report too
        if "fleet" in wanted:
            e2e["fleet"] = await self.section("fleet end to end", self._fleet(workdir, certs, load))
        if "embedded" in wanted:
            e2e["embedded"] = await self.section("embedded end to end", self._embedded(workdir, certs, load))
        return self._results(info, base, e2e, side)

    def _results(self, info: dict[str, Any], base: dict[str, Any], e2e: dict[str, Any],
                 side: dict[str, Any]) -> dict[str, Any]:
        load: LoadPlan = self.plan["load"]
        info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        plan = {k: v for k, v in self.plan.items() if not isinstance(v, LoadPlan | fanout.FanoutPlan)}
        plan["fanout"] = dict(self.plan["fanout"].__dict__)
        plan["load"] = dict(load.__dict__)
        plan["unloaded"] = dict(self.plan["unloaded"].__dict__)
        plan["gateway_rate_limit_env"] = systems.UNLIMITED_RATE
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "commit": _commit(),
            "command": " ".join(["python -m bench.run", *self.argv]),
            "plan": plan,
            "machine": info,
            "baselines": base,
            "end_to_end": e2e,
            "fanout": side,
            "ratios": ratios(base, e2e),
            "errors": self.errors,
        }

    async def _side_by_side(self, name: str, workdir: Path, certs: Path) -> dict[str, Any]:
        """One system under the fan-out workload (bench.fanout), started and stopped here."""
        from chase.tls import client_context

        plan: fanout.FanoutPlan = self.plan["fanout"]
        count = max(plan.sizes)
        if name == "bare":
            async with systems.bare(workdir / "bare", certs) as running:
                with self._sampled(name, running.pids["bare"]):
                    return await fanout.measure_system(name, running.gateway_url, client_context(running.ca_path),
                                                       [None] * count, [None] * plan.senders,
                                                       list(running.pids.values()), plan, synced=False)
        if name == "prosody":
            return await self._prosody(certs)
        password = f"bench-{self.run_id}-password"
        directory = workdir / f"fanout-{name}"
        directory.mkdir()
        if name == "embedded":
            context = systems.embedded(directory, certs, overrides=self.plan["overrides"],
                                       profile_dir=self._profile_dir("fanout-embedded"))
        elif name == "fleet":
            namespace = f"{self.namespace}-f"
            context = systems.fleet(directory, certs, database_url=self.database("fanout"), amqp_url=self.args.amqp,
                                    namespace=namespace, overrides=self.plan["overrides"],
                                    profile_dir=self._profile_dir("fanout-fleet"))
        else:
            raise ValueError(f"unknown system {name!r}")
        try:
            async with context as running:
                tokens = await fanout.register_users(running.auth_url, running.ca_path, count + plan.senders,
                                                     password, "fan_")
                pids = [running.pids["gateway"]] if "gateway" in running.pids else list(running.pids.values())
                with self._sampled(name, pids[0]):
                    result = await fanout.measure_system(name, running.gateway_url,
                                                         client_context(running.ca_path), tokens[plan.senders:],
                                                         tokens[:plan.senders], pids, plan, synced=True)
                result["measured_pids"] = "gateway" if "gateway" in running.pids else "serve (whole system)"
            result["process_problems"] = running.problems
            return result
        finally:
            if name == "fleet":
                await self._delete_namespace(
                    "fan-out fleet cleanup", namespace,
                    queues=["persistence.submitted", "persistence.history", "dead-letter", "gateway.bench-gw"])

    async def _prosody(self, certs: Path) -> dict[str, Any]:
        """Prosody's MUC under the same workload (bench.prosody), or why it was skipped."""
        from chase.tls import client_context

        reason = prosody.unavailable()
        if reason:
            print(f"    prosody skipped: {reason}", file=sys.stderr, flush=True)
            return {"system": "prosody", "skipped": reason, "sizes": {}}
        plan: fanout.FanoutPlan = self.plan["fanout"]
        password = f"bench-{self.run_id}-password"
        users = [f"fan_{i}" for i in range(max(plan.sizes) + plan.senders)]
        async with prosody.running(certs) as server:
            context = client_context(server.ca_path)
            started = time.perf_counter()
            await prosody.register(server.port, context, users, password)
            registered = time.perf_counter() - started
            result = await fanout.measure_system("prosody", "", context, users[plan.senders:], users[:plan.senders],
                                                 [server.pid], plan, synced=True,
                                                 driver=prosody.XmppDriver(server.port, context, password))
        result["measured_pids"] = "prosody (whole system)"
        result["version"] = server.version
        result["register_seconds"] = round(registered, 2)
        result["process_problems"] = server.problems
        return result

    @contextmanager
    def _sampled(self, name: str, pid: int) -> Iterator[None]:
        """py-spy on ``pid`` while the block runs (with --py-spy), collapsed stacks to a file."""
        if self.args.py_spy is None:
            yield
            return
        self.args.py_spy.mkdir(parents=True, exist_ok=True)
        output = self.args.py_spy.resolve() / f"{name}.txt"
        spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                                "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(output)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()

    async def _on_mariadb(self, measure, purpose: str, **kwargs: Any) -> dict[str, Any]:  # noqa: ANN001
        # The database is made inside the section, so a MariaDB that is down fails only this one.
        return await measure(self.database(purpose), **kwargs)

    async def _users(self, running: systems.Running, load: LoadPlan) -> tuple[list[str], list[str]]:
        from services.auth.client import AuthClient

        password = f"bench-{self.run_id}-password"
        tokens: dict[str, list[str]] = {"s": [], "r": []}
        async with AuthClient(running.auth_url, ca_path=running.ca_path, timeout=30) as auth:
            for kind, count in (("s", load.senders), ("r", load.receivers)):
                for i in range(count):
                    name = f"bench_{kind}{i}"
                    await auth.register(name, password)
                    tokens[kind].append((await auth.login(name, password)).token)
        return tokens["s"], tokens["r"]

    async def _measure(self, running: systems.Running, load: LoadPlan, groups: dict[str, list[int]]) -> dict:
        """The load, with CPU probed, then the unloaded latency on the same system."""
        from chase.tls import client_context

        senders, receivers = await self._users(running, load)
        context = client_context(running.ca_path)
        probe = machine.CpuProbe({"bench client (this process)": [os.getpid()], **groups})
        result = await run_load(running.gateway_url, context, senders, receivers, load,
                                on_measure_start=probe.start, on_measure_end=probe.stop)
        try:
            result["unloaded"] = await run_load(running.gateway_url, context, senders[:1], receivers[:1],
                                                self.plan["unloaded"])
        except Exception as exc:  # noqa: BLE001 - the main figures stand without it
            self.errors["unloaded latency"] = f"{type(exc).__name__}: {exc}"
        return result

    async def _drain(self) -> dict[str, Any]:
        namespace = f"{self.namespace}-w"
        try:
            return await stages.worker_drain(self.args.amqp, namespace, self.database("drain"),
                                             messages=self.plan["drain_messages"], publishers=self.plan["load"].senders)
        finally:
            await self._delete_namespace("worker cleanup", namespace,
                                         queues=["persistence.submitted", "dead-letter", "bench-sink"])

    async def _delete_namespace(self, what: str, namespace: str, queues: list[str]) -> None:
        """Remove the queues and exchanges a system made; a failure is recorded, not raised, so
        it cannot hide the failure that may have brought us here."""
        try:
            leftovers = await infra.delete_namespace(self.args.amqp, namespace, queues=queues,
                                                     exchanges=["events", "dead-letter"])
        except Exception as exc:  # noqa: BLE001 - e.g. the broker is down: nothing was made there
            leftovers = [repr(exc)]
        if leftovers:
            self.errors[what] = "; ".join(leftovers)

    async def _fleet(self, workdir: Path, certs: Path, load: LoadPlan) -> dict[str, Any]:
        url = self.database("fleet")
        directory = workdir / "fleet"
        directory.mkdir()
        try:
            async with systems.fleet(directory, certs, database_url=url, amqp_url=self.args.amqp,
                                     namespace=self.namespace, overrides=self.plan["overrides"],
                                     profile_dir=self._profile_dir("fleet")) as running:
                groups = {name: [pid] for name, pid in running.pids.items()}
                with self._sampled("write-fleet-persistence", running.pids["persistence"]), \
                        self._sampled("write-fleet-gateway", running.pids["gateway"]):
                    result = await self._measure(running, load, {**groups, **machine.infra_groups()})
            result["process_problems"] = running.problems
        finally:
            await self._delete_namespace(
                "fleet cleanup", self.namespace,
                queues=["persistence.submitted", "persistence.history", "dead-letter", "gateway.bench-gw"])
        result["stored_batches"] = await _stored_batches(url)
        result["submission_groups"] = _submission_groups(directory / "gateway.log")
        result["topology"] = "chase auth + 1 chase persistence + 1 chase gateway (processes), RabbitMQ, MariaDB"
        return result

    async def _embedded(self, workdir: Path, certs: Path, load: LoadPlan) -> dict[str, Any]:
        directory = workdir / "embedded"
        directory.mkdir()
        async with systems.embedded(directory, certs, overrides=self.plan["overrides"],
                                    profile_dir=self._profile_dir("embedded")) as running:
            result = await self._measure(running, load, {name: [pid] for name, pid in running.pids.items()})
        result["process_problems"] = running.problems
        result["stored_batches"] = await _stored_batches(f"sqlite+aiosqlite:///{directory / 'chase.db'}")
        result["submission_groups"] = _submission_groups(directory / "serve.log")
        result["topology"] = "chase serve (one process), SQLite, in-process bus"
        return result

    def _profile_dir(self, system: str) -> Path | None:
        if self.args.profile is None:
            return None
        directory = self.args.profile.resolve() / system
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def cleanup(self) -> None:
        for name in self.databases:
            try:
                infra.drop_database(self.args.mariadb, name)
            except Exception as exc:  # noqa: BLE001 - say so; the next one may still go
                self.errors[f"drop {name}"] = repr(exc)


def _submission_groups(log: Path) -> dict[str, Any] | None:
    """How many events the gateway published the sends in, from its last log line (over the
    process's whole life: the warm-up and the unloaded probe, one send at a time, included);
    None when it did not say (an older tree)."""
    import re

    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"submission_groups=(\d+)\s+.*?sends_published=(\d+)|sends_published=(\d+)\s+.*?"
                       r"submission_groups=(\d+)", text)
    if not found:
        return None
    a_groups, a_sends, b_sends, b_groups = found[-1]
    groups, sends = int(a_groups or b_groups), int(a_sends or b_sends)
    return {"groups": groups, "sends": sends, "mean": round(sends / groups, 2) if groups else None}


async def _stored_batches(url: str) -> dict[str, Any]:
    """Batch sizes the worker really wrote: one batch is one transaction with one ``created_at``."""
    import sqlalchemy as sa

    from chase.store.engine import create_engine
    from chase.store.tables import messages

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            # Only the main load's messages ("ma..."): not the warm-up, not the unloaded probe.
            query = (sa.select(sa.func.count()).where(messages.c.client_msg_id.like("ma%"))
                     .group_by(messages.c.created_at))
            counts = (await conn.execute(query)).scalars().all()
    finally:
        await engine.dispose()
    return batch_sizes(list(counts))


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=systems.ROOT, capture_output=True,
                              text=True, timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() or None


def _without_output(argv: list[str]) -> list[str]:
    """The command line as recorded in the results: where they were written does not matter."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--output":
            skip = True
        elif not arg.startswith("--output="):
            kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> int:
    from chase.cli import event_loop_factory
    from chase.logging import configure
    from chase.rlimit import raise_open_file_limit

    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    # The worker stage runs ChaSe code in this process: its logs would drown the report.
    configure("warning")
    raise_open_file_limit()  # a thousand receivers and more
    if args.system_root is not None:
        systems.ROOT = args.system_root.resolve()
    suite = Suite(args, _without_output(argv))
    load1 = os.getloadavg()[0]
    if load1 > (os.cpu_count() or 1) * 0.5:
        print(f"note: the load average is {load1:.2f} on {os.cpu_count()} cores; figures will be lower "
              "than on a quiet machine", file=sys.stderr)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="chase-bench-") as tmp:
            # The load generator shares the CPU with the systems under test: uvloop keeps it cheap.
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                results = runner.run(suite.run(Path(tmp)))
    finally:
        suite.cleanup()
    results["errors"] = suite.errors
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    print(render(results))
    print(f"\nresults written to {args.output}")
    if suite.errors:
        print("errors: " + json.dumps(suite.errors, indent=2), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
