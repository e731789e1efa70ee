"""A group room of 1,000 members spread over two gateways: what one room message costs.

    .venv/bin/python -m bench.rooms                   # 1,000 members, 200 messages
    .venv/bin/python -m bench.rooms --members 200     # a shorter run

It runs the production topology as processes on this machine (auth, one persistence worker,
two gateways, on RabbitMQ and a throwaway MariaDB database ``chase_bench_<id>_rooms``), puts
``--members`` users with sessions and one room holding all of them straight into the
database (set-up, not load), connects every member over WSS, half to each gateway, and has
one member send ``--messages`` messages to the room (``--window`` unacknowledged at most).
It reports, per message, the time from its send to its delivery at the last of the members
(p50/p99), the deliveries per second, and checks every member got every message exactly
once. The room is one broker route per gateway: each message is published once by the
worker and copied by the broker to the two gateway queues, whatever the number of members.
Everything it made (processes, database, bus namespace) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import ssl
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench import infra
from bench.stats import percentile
from bench.systems import UNLIMITED_RATE, Group, unused_port
from chase.store.engine import create_engine
from chase.store.tables import room_conversation, room_members, rooms, sessions, users
from chase.tls import client_context, ensure_dev_certs
from services.auth.security import hash_token

DEFAULT_MARIADB = "mysql+asyncmy://root@127.0.0.1:3306"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
ROOM_ID = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.rooms", description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="room members, half per gateway (default 1000)")
    parser.add_argument("--messages", type=int, default=200, help="messages sent to the room (default 200)")
    parser.add_argument("--window", type=int, default=8, help="unacknowledged sends at most (default 8)")
    parser.add_argument("--mariadb", default=DEFAULT_MARIADB, help="MariaDB server URL, without a database")
    parser.add_argument("--amqp", default=DEFAULT_AMQP, help="RabbitMQ URL")
    parser.add_argument("--output", type=Path, default=None, help="also write the results as JSON here")
    return parser


async def _populate(database_url: str, members: int) -> list[str]:
    """Users 1..members with a session each, and room 1 holding all of them; their tokens."""
    now = datetime.now(UTC).replace(tzinfo=None)
    tokens = [secrets.token_urlsafe(32) for _ in range(members)]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(users.insert(), [
                {"id": i, "username": f"m{i}", "password_hash": "x", "created_at": now} for i in range(1, members + 1)
            ])
            await conn.execute(sessions.insert(), [
                {"id": uuid.uuid4().hex, "token_hash": hash_token(token), "user_id": i, "created_at": now,
                 "expires_at": now + timedelta(hours=2)}
                for i, token in enumerate(tokens, start=1)
            ])
            await conn.execute(rooms.insert().values(id=ROOM_ID, name="everyone", owner_id=1, open=False,
                                                     history="joined", member_count=members, created_at=now))
            await conn.execute(room_members.insert(), [
                {"room_id": ROOM_ID, "user_id": i, "state": "joined", "role": "owner" if i == 1 else "member",
                 "visible_from": 0, "updated_at": now}
                for i in range(1, members + 1)
            ])
            assert room_conversation(ROOM_ID) == "room:1"
    finally:
        await engine.dispose()
    return tokens


class _Member:
    def __init__(self, ws: ClientConnection, tally: _Tally) -> None:
        self.ws, self.tally = ws, tally
        self.hello = asyncio.Event()
        self.seen: set[int] = set()
        self.duplicates = 0
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            await self._frames()
        except ConnectionClosed:
            pass

    async def _frames(self) -> None:
        async for data in self.ws:
            frame = json.loads(data)
            kind = frame["type"]
            if kind == "hello":
                self.hello.set()
            elif kind == "message" and frame["message"].get("room_id") == ROOM_ID:
                mid = frame["message"]["id"]
                if mid in self.seen:
                    self.duplicates += 1
                    continue
                self.seen.add(mid)
                self.tally.delivered(frame["message"]["client_msg_id"])
            elif kind == "ack":
                self.tally.acked(frame["client_msg_id"])
            elif kind == "error":
                self.tally.errors.append(frame)


class _Tally:
    def __init__(self, members: int, window: int) -> None:
        self.members = members
        self.sent_at: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.latency: dict[str, float] = {}
        self.errors: list[dict[str, Any]] = []
        self.slots = asyncio.Semaphore(window)
        self.all_done = asyncio.Event()
        self.expected = 0

    def acked(self, cid: str) -> None:
        if cid in self.sent_at:
            self.slots.release()

    def delivered(self, cid: str) -> None:
        count = self.counts.get(cid, 0) + 1
        self.counts[cid] = count
        if count == self.members and cid in self.sent_at:
            self.latency[cid] = time.perf_counter() - self.sent_at[cid]
            if len(self.latency) == self.expected:
                self.all_done.set()


async def _connect_all(urls: list[str], tokens: list[str], context: ssl.SSLContext, tally: _Tally) -> list[_Member]:
    members: list[_Member] = []

    async def one(index: int, token: str) -> None:
        # Set-up, not load: a connection refused while the machine is busy (1013, try again
        # later) is opened again, a few times at most.
        for attempt in range(5):
            ws = await connect(urls[index % len(urls)], ssl=context,
                               additional_headers={"Authorization": f"Bearer {token}"},
                               open_timeout=60, max_size=4 * 1024 * 1024, compression=None)
            member = _Member(ws, tally)
            hello = asyncio.ensure_future(member.hello.wait())
            await asyncio.wait({hello, member.reader}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
            hello.cancel()
            if member.hello.is_set():
                members.append(member)
                return
            member.reader.cancel()
            await asyncio.sleep(1 + attempt)
        raise RuntimeError(f"member {index} could not connect")

    # A few at a time: the auth service checks every token and the gateway binds every user's
    # keys; a thousand handshakes at once would only measure their queues.
    for start in range(0, len(tokens), 10):
        await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens[start:start + 10], start=start)))
    return members


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    name = f"chase_bench_{run_id}_rooms"
    namespace = f"bench-{run_id}"
    with tempfile.TemporaryDirectory(prefix="chase-bench-rooms-") as folder:
        directory = Path(folder)
        certs = directory / "certs"
        ensure_dev_certs(certs)
        database_url = infra.create_database(args.mariadb, name)
        auth_port, ports = unused_port(), [unused_port(), unused_port()]
        env = {
            "CHASE_CERTS_DIR": str(certs), "CHASE_LOG_LEVEL": "info", "CHASE_DATABASE_URL": database_url,
            "CHASE_AMQP_URL": args.amqp, "CHASE_BUS_NAMESPACE": namespace, "CHASE_AUTH_PORT": str(auth_port),
            "CHASE_GATEWAY_AUTH_URL": f"https://127.0.0.1:{auth_port}", **UNLIMITED_RATE,
        }
        group = Group(directory, env)
        members: list[_Member] = []
        try:
            group.run("migrate")
            tokens = await _populate(database_url, args.members)
            group.start("auth", "auth")
            worker = group.start("persistence", "persistence")
            await group.wait_ready([auth_port], log_line=(worker, "persistence_started"))
            for i, port in enumerate(ports):
                group.start(f"gateway{i}", "gateway", CHASE_GATEWAY_PORT=str(port), CHASE_GATEWAY_ID=f"bench-gw{i}")
            await group.wait_ready([auth_port, *ports])
            tally = _Tally(args.members, args.window)
            tally.expected = args.messages
            context = client_context(certs / "ca.pem")
            connect_started = time.perf_counter()
            members = await _connect_all([f"wss://127.0.0.1:{p}" for p in ports], tokens, context, tally)
            connect_seconds = time.perf_counter() - connect_started
            print(f"{len(members)} members connected in {connect_seconds:.0f} s", flush=True)
            sender = members[0]
            started = time.perf_counter()
            for n in range(args.messages):
                await tally.slots.acquire()
                cid = f"bench-{n}"
                tally.sent_at[cid] = time.perf_counter()
                await sender.ws.send(json.dumps({"type": "send", "client_msg_id": cid, "room_id": ROOM_ID,
                                                 "body": f"message {n}"}))
            try:
                async with asyncio.timeout(120):
                    await tally.all_done.wait()
            except TimeoutError:
                pass
            elapsed = time.perf_counter() - started
            latencies = sorted(tally.latency.values())
            delivered = sum(tally.counts.values())
            return {
                "members": args.members,
                "gateways": len(ports),
                "messages": args.messages,
                "window": args.window,
                "connect_seconds": round(connect_seconds, 2),
                "complete": len(latencies) == args.messages and not tally.errors,
                "deliveries": delivered,
                "deliveries_per_second": round(delivered / elapsed),
                "messages_per_second": round(len(latencies) / elapsed, 1),
                "all_members_p50_ms": round(1000 * percentile(latencies, 50), 1) if latencies else None,
                "all_members_p99_ms": round(1000 * percentile(latencies, 99), 1) if latencies else None,
                "duplicates": sum(m.duplicates for m in members),
                # The machine is shared: its load when the run ended says how far to trust the times.
                "load_average_1m": round(os.getloadavg()[0], 1),
                "errors": tally.errors[:5],
                "problems": [],
            }
        finally:
            for member in members:
                member.reader.cancel()
            await asyncio.gather(*(m.ws.close() for m in members), return_exceptions=True)
            problems = group.stop_all()
            infra.drop_database(args.mariadb, name)
            await infra.delete_namespace(args.amqp, namespace,
                                         ["persistence.submitted", "persistence.history", "dead-letter"],
                                         ["events", "dead-letter"])
            if problems:
                print("\n".join(problems))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = asyncio.run(run(args))
    print("| members | gateways | messages | all members got it: p50 | p99 | deliveries/s | complete |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {result['members']:,} | {result['gateways']} | {result['messages']} | {result['all_members_p50_ms']} ms "
          f"| {result['all_members_p99_ms']} ms | {result['deliveries_per_second']:,} | {result['complete']} |")
    print(json.dumps(result, indent=2))
    if args.output is not None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
