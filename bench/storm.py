"""Idle connections and a reconnect storm on one gateway, with several load-generator processes.

    python -m bench.storm [--systems bare,embedded,fleet] [--idle 1000] [--storm 1000]
                          [--workers 4] [--in-flight 400] [--output bench/results/storm.json]

For every system, in one run (the bare ``websockets`` server of ``bench.bare`` first: the
baseline of what TLS and WebSocket alone cost on this machine at that moment):

1. **idle**: ``--idle`` connections opened (``--in-flight`` handshakes at a time over all the
   load generators), each waiting for its ``hello``; then the server's resident memory and
   open files, minus what they were before, divided by the connections;
2. **storm**: all of them dropped (TCP abort), then ``--storm`` of them reconnect at the same
   moment; the time until every one has its ``hello`` and (ChaSe) the ``sync_page`` answering
   the ``sync`` it sent on the hello, and how many were refused (close code, HTTP status or
   connect error).

One Python process cannot open 10,000 TLS connections quickly on a shared core, so the
clients are spread over ``--workers`` processes (``python -m bench.storm worker``, each with
its own open-file limit), driven over their stdin/stdout with one JSON line per command. Their
clocks are one clock (``time.monotonic`` is system-wide on Linux). Everything talks to
127.0.0.1 only, and every phase is bounded (``--phase-seconds``): the run stops itself.

ChaSe users: as many as the larger of ``--idle`` and ``--storm``, up to ``--users``; with
fewer users than connections each user holds several (at most the gateway's cap per user).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import infra, systems
from bench.fanout import Receiver, Tally, _request, close_receivers, register_users, rss_kib
from bench.machine import cpu_seconds

DEFAULT_MARIADB = "mysql+asyncmy://root@127.0.0.1:3306"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def open_files(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


# --- one load-generator process ------------------------------------------------------------------


class StormTally(Tally):
    """Also counts the error frames that answer a ``sync`` (the gateway could not ask the
    history service in time): a client that gets one has its hello but is not synced; a real
    client would ask again."""

    sync_failed: int = 0

    def on_text(self, payload: bytes, now_ns: int) -> None:
        if payload.startswith(b'{"type":"error"'):
            self.sync_failed += 1
            return
        super().on_text(payload, now_ns)


class Worker:
    """Opens, drops and reopens its share of the connections on command."""

    def __init__(self, url: str, ca: str, tokens: list[str | None], in_flight: int, sync: bool) -> None:
        self.url = url
        self.parts = urlsplit(url)
        self.context = ssl.create_default_context(cafile=ca)
        self.tokens = tokens
        self.in_flight = in_flight
        self.sync = sync
        self.receivers: list[Receiver] = []

    async def open_all(self, seconds: float, *, start_at: float | None = None) -> dict[str, Any]:
        """Open every connection (at ``start_at``, monotonic, if given); report when each
        milestone was reached (monotonic seconds) and what was refused."""
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        tally = StormTally(sync_after_hello=self.sync)
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(self.in_flight)
        n = len(self.tokens)
        started = time.monotonic()
        fresh: list[Receiver] = []

        async def one(token: str | None) -> None:
            async with gate:
                try:
                    _, proto = await loop.create_connection(
                        lambda: Receiver(tally, _request(self.url, token)), self.parts.hostname, self.parts.port,
                        ssl=self.context, server_hostname=self.parts.hostname, ssl_handshake_timeout=seconds)
                except (OSError, ssl.SSLError) as exc:
                    why = f"connect: {type(exc).__name__}"
                    tally.closes[why] = tally.closes.get(why, 0) + 1
                    return
                fresh.append(proto)
                # Holds its place in line until the hello (or a refusal): a storm of clients
                # each waiting for its own hello, not a stream of half-open handshakes.
                while not proto.upgraded and not proto.closed.done():  # noqa: ASYNC110 - cheap poll
                    await asyncio.sleep(0.01)

        all_hello = all_synced = None
        try:
            async with asyncio.timeout(seconds):
                await asyncio.gather(*(one(t) for t in self.tokens))
                while tally.hellos + sum(tally.closes.values()) < n:  # noqa: ASYNC110 - polled
                    await asyncio.sleep(0.02)
                all_hello = time.monotonic()
                if self.sync:
                    while tally.synced + tally.sync_failed + sum(tally.closes.values()) < n:  # noqa: ASYNC110 - polled
                        await asyncio.sleep(0.02)
                    if not tally.sync_failed:
                        all_synced = time.monotonic()
        except TimeoutError:
            pass
        self.receivers = fresh
        return {"started": started, "all_hello": all_hello, "all_synced": all_synced, "hellos": tally.hellos,
                "synced": tally.synced, "sync_failed": tally.sync_failed, "refused": tally.closes, "open": sum(not r.closed.done() for r in fresh)}

    async def drop_all(self) -> dict[str, Any]:
        close_receivers(self.receivers)
        await asyncio.gather(*(r.closed for r in self.receivers), return_exceptions=True)
        dropped = len(self.receivers)
        self.receivers = []
        return {"dropped": dropped}


async def _worker_main(args: argparse.Namespace) -> None:
    from chase.rlimit import raise_open_file_limit

    raise_open_file_limit()
    tokens = json.loads(Path(args.tokens).read_text())  # noqa: ASYNC240 - set-up, before any load
    worker = Worker(args.url, args.ca, tokens, args.in_flight, args.sync)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        if command["do"] == "open":
            reply = await worker.open_all(command["seconds"], start_at=command.get("start_at"))
        elif command["do"] == "drop":
            reply = await worker.drop_all()
        else:
            break
        print(json.dumps(reply), flush=True)
    await worker.drop_all()


# --- the driver ----------------------------------------------------------------------------------


class Generators:
    """The load-generator processes of one system's run."""

    def __init__(self, url: str, ca: Path, tokens: list[str | None], workers: int, in_flight: int, sync: bool,
                 directory: Path) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        per_worker = max(1, in_flight // workers)
        for i in range(workers):
            share = tokens[i::workers]
            path = directory / f"tokens-{i}.json"
            path.write_text(json.dumps(share))
            command = [sys.executable, "-m", "bench.storm", "worker", "--url", url, "--ca", str(ca),
                       "--tokens", str(path), "--in-flight", str(per_worker)]
            if sync:
                command.append("--sync")
            self.procs.append(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                               cwd=systems.ROOT))
        for proc in self.procs:
            assert json.loads(proc.stdout.readline())["ready"]  # type: ignore[union-attr]

    async def ask(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        line = json.dumps(command) + "\n"
        for proc in self.procs:
            proc.stdin.write(line)  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        return [json.loads(await asyncio.to_thread(proc.stdout.readline)) for proc in self.procs]  # type: ignore[union-attr]

    def stop(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.write(json.dumps({"do": "quit"}) + "\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _merge(replies: list[dict[str, Any]], started: float) -> dict[str, Any]:
    refused: dict[str, int] = {}
    for r in replies:
        for why, count in r["refused"].items():
            refused[why] = refused.get(why, 0) + count

    def last(key: str) -> float | None:
        if any(r[key] is None for r in replies):
            return None
        return round(max(r[key] for r in replies) - started, 2)

    return {"all_hello_seconds": last("all_hello") if not refused else None,
            "all_synced_seconds": last("all_synced") if not refused else None,
            "last_answer_seconds": last("all_hello"),
            "hellos": sum(r["hellos"] for r in replies), "synced": sum(r["synced"] for r in replies),
            "sync_failed": sum(r["sync_failed"] for r in replies),
            "open": sum(r["open"] for r in replies), "refused": refused}


async def measure(name: str, running: systems.Running, idle_tokens: list[str | None],
                  storm_count: int, args: argparse.Namespace, directory: Path, *, sync: bool) -> dict[str, Any]:
    pids = list(running.pids.values())
    server = running.pids.get("gateway") or running.pids.get("serve") or running.pids.get("bare")
    assert server is not None
    result: dict[str, Any] = {"system": name, "load_average_before": os.getloadavg()}
    gens = Generators(running.gateway_url, running.ca_path, idle_tokens, args.workers, args.in_flight, sync,
                      directory)
    try:
        await asyncio.sleep(1.0)
        rss0, fds0 = rss_kib(server) or 0, open_files(server) or 0
        started = time.monotonic()
        idle = _merge(await gens.ask({"do": "open", "seconds": args.phase_seconds}), started)
        await asyncio.sleep(2.0)  # presence news and room loads of the last connects settle
        rss1, fds1 = rss_kib(server) or 0, open_files(server) or 0
        n = idle["open"] or 1
        result["idle"] = {
            "connections": len(idle_tokens), **idle,
            "rss_kib_before": rss0, "rss_kib_after": rss1, "kib_per_connection": round((rss1 - rss0) / n, 1),
            "open_files_before": fds0, "open_files_after": fds1,
            "open_files_per_connection": round((fds1 - fds0) / n, 2),
        }
        await gens.ask({"do": "drop"})
        await asyncio.sleep(3.0)  # the server sees every connection gone
        # The storm: the first storm_count connections come back at once.
        if storm_count < len(idle_tokens):
            gens.stop()
            gens = Generators(running.gateway_url, running.ca_path, idle_tokens[:storm_count], args.workers,
                              args.in_flight, sync, directory)
        cpu0 = sum(cpu_seconds(p) or 0.0 for p in pids)
        start_at = time.monotonic() + 0.5
        with sampled(args.py_spy, name, running.pids):
            storm = _merge(await gens.ask({"do": "open", "seconds": args.phase_seconds, "start_at": start_at}),
                           start_at)
        result["storm"] = {"clients": storm_count, **storm,
                           "server_cpu_seconds": round(sum(cpu_seconds(p) or 0.0 for p in pids) - cpu0, 2),
                           "load_average_after": os.getloadavg()}
        await gens.ask({"do": "drop"})
    finally:
        gens.stop()
    return result


@contextmanager
def sampled(directory: Path | None, system: str, pids: dict[str, int]) -> Iterator[None]:
    """With ``--py-spy DIR``: every server process sampled while the block runs, its collapsed
    stacks in ``DIR/<system>-<process>.txt`` (the samplers cost CPU: compare CPU per connect
    from runs without them)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--rate", "100",
                          "--format", "raw", "--nonblocking", "--output", str(directory.resolve() / f"{system}-{name}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, pid in pids.items()
    ]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()


def _save(args: argparse.Namespace, results: dict[str, Any]) -> None:
    # After every system: a run stopped half-way keeps what it measured.
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from chase.tls import ensure_dev_certs

    certs = workdir / "certs"
    ensure_dev_certs(certs)
    users = min(args.users, max(args.idle, args.storm))
    plan = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
            if k not in ("command", "output", "keep_logs")}
    results: dict[str, Any] = {"plan": plan,
                               "cores": os.cpu_count(), "systems": {}}
    run_id = uuid.uuid4().hex[:8]
    overrides = {"CHASE_GATEWAY_MAX_CONNECTIONS_PER_USER": str(max(20, -(-args.idle // users))),
                 "CHASE_GATEWAY_MAX_CONNECTIONS": str(max(10_000, args.idle + 100))}
    for name in args.systems.split(","):
        directory = workdir / name
        directory.mkdir()
        if name == "bare":
            async with systems.bare(directory, certs) as running:
                tokens: list[str | None] = [None] * args.idle
                results["systems"][name] = await measure(name, running, tokens, args.storm, args, directory,
                                                         sync=False)
            _save(args, results)
            continue
        database = None
        if name == "embedded":
            context = systems.embedded(directory, certs, overrides=overrides)
        else:
            database = f"chase_bench_{run_id}_storm"
            url = infra.create_database(args.mariadb, database)
            context = systems.fleet(directory, certs, database_url=url, amqp_url=args.amqp,
                                    namespace=f"bench-{run_id}-s", overrides=overrides)
        try:
            async with context as running:
                t0 = time.perf_counter()
                made = await register_users(running.auth_url, running.ca_path, users, "pw-storm-0123456789",
                                            f"st{run_id[:4]}_", concurrency=16)
                registered = round(time.perf_counter() - t0, 1)
                tokens = [made[i % users] for i in range(args.idle)]
                results["systems"][name] = await measure(name, running, tokens, args.storm, args, directory,
                                                         sync=True)
                results["systems"][name]["users"] = users
                results["systems"][name]["register_seconds"] = registered
            results["systems"][name]["problems"] = running.problems
            _save(args, results)
        finally:
            if name == "fleet":
                await infra.delete_namespace(args.amqp, f"bench-{run_id}-s", queues=[
                    "persistence.submitted", "persistence.history", "dead-letter", "gateway.bench-gw"],
                    exchanges=["events", "dead-letter"])
            if database is not None:
                infra.drop_database(args.mariadb, database)
    return results


def render(results: dict[str, Any]) -> str:
    lines = ["| system | idle conns | KiB/conn | open files/conn | storm clients | all hello s | all synced s "
             "| hellos / synced / sync failed | refused | server CPU s | load avg |",
             "|:---|---:|---:|---:|---:|---:|---:|:---|:---|---:|:---|"]
    for name, r in results["systems"].items():
        idle, storm = r["idle"], r["storm"]
        load = "{:.1f} → {:.1f}".format(r["load_average_before"][0], storm["load_average_after"][0])
        lines.append(f"| {name} | {idle['open']:,} of {idle['connections']:,} | {idle['kib_per_connection']} | "
                     f"{idle['open_files_per_connection']} | {storm['clients']:,} | {storm['all_hello_seconds']} | "
                     f"{storm['all_synced_seconds']} | {storm['hellos']:,} / {storm['synced']:,} / {storm['sync_failed']:,} | "
                     f"{storm['refused'] or 0} | {storm['server_cpu_seconds']} | "
                     f"{load} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help="one load-generator process (started by the driver)")
    worker.add_argument("--url", required=True)
    worker.add_argument("--ca", required=True)
    worker.add_argument("--tokens", required=True)
    worker.add_argument("--in-flight", type=int, required=True)
    worker.add_argument("--sync", action="store_true")
    parser.add_argument("--systems", default="bare,embedded,fleet")
    parser.add_argument("--idle", type=int, default=1000, help="idle connections")
    parser.add_argument("--storm", type=int, default=1000, help="clients in the reconnect storm (<= --idle)")
    parser.add_argument("--users", type=int, default=5000, help="at most this many ChaSe users")
    parser.add_argument("--workers", type=int, default=4, help="load-generator processes")
    parser.add_argument("--in-flight", type=int, default=400, help="handshakes in progress at once, over all workers")
    parser.add_argument("--phase-seconds", type=float, default=90.0, help="bound on each phase")
    parser.add_argument("--mariadb", default=DEFAULT_MARIADB)
    parser.add_argument("--amqp", default=DEFAULT_AMQP)
    parser.add_argument("--keep-logs", type=Path, help="copy the systems' logs into this folder")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR", dest="py_spy",
                        help="sample every server process with py-spy during the storm, collapsed stacks here")
    parser.add_argument("--system-root", type=Path, default=None, metavar="DIR",
                        help="run the systems from this source tree (e.g. `git archive` of an older commit)")
    parser.add_argument("--output", type=Path, default=Path("bench/results/storm.json"))
    return parser


def main(argv: list[str] | None = None) -> int:
    from chase.cli import event_loop_factory
    from chase.logging import configure
    from chase.rlimit import raise_open_file_limit

    args = _parser().parse_args(argv)
    configure("warning")
    raise_open_file_limit()
    if args.command == "worker":
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_worker_main(args))
        return 0
    args.storm = min(args.storm, args.idle)
    if args.system_root is not None:
        systems.ROOT = args.system_root.resolve()
    with tempfile.TemporaryDirectory(prefix="chase-storm-") as tmp:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            results = runner.run(run(args, Path(tmp)))
        if args.keep_logs is not None:
            # The systems' logs say why a client was refused.
            for log in Path(tmp).rglob("*.log"):
                target = args.keep_logs / log.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(log.read_bytes())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
