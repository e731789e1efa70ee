"""History and sync at depth: pages of a large ``messages`` table, read through the store.

    .venv/bin/python -m bench.history                  # 1,000,000 messages in MariaDB
    .venv/bin/python -m bench.history --rows 100000    # a shorter run

It creates a throwaway database (``chase_bench_<id>_history``) on the MariaDB server
(``--mariadb``, default root@127.0.0.1:3306), migrates it, bulk-loads the messages in the
server itself (INSERT ... SELECT over MariaDB's sequence engine, a few seconds per 100,000
rows), times each kind of page through :class:`services.persistence.store.MessageStore` (the
code the history service runs), prints p50/p99 per kind and drops the database, whatever
happens. Each kind is timed ``--samples`` times at most and for ``--seconds`` at most.

The data (``load_messages``, also used by the tests that check the query plans): ``users``
users; the first half of the ids is the public room, the second half private messages, one in
ten of them between users 1 and 2 (a long conversation), the others spread over every pair.
So the public room is deep, the 1-2 conversation is deep and interleaved with others' rows,
and user 50 sees only a sparse 2% of the second half.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from bench import infra
from bench.stats import percentile

#: The driver the fleet runs (docker-compose.yml); ``--mariadb mysql+aiomysql://...`` for the other.
DEFAULT_MARIADB = "mysql+asyncmy://root@127.0.0.1:3306"
USERS = 100
#: The user whose visible messages are sparse (not 1 or 2, who share the long conversation).
SPARSE_VIEWER = 50
#: Rows per INSERT ... SELECT, so no one statement holds a huge transaction.
CHUNK = 100_000


def _source(dialect: str, first: int, last: int) -> str:
    """A ``seq`` column counting from ``first`` to ``last`` (as a FROM clause)."""
    if dialect == "mysql":
        return f"seq_{first}_to_{last} AS s"
    return (
        f"(WITH RECURSIVE n(seq) AS (SELECT {first} UNION ALL SELECT seq + 1 FROM n WHERE seq < {last}) "
        "SELECT seq FROM n) AS s"
    )


def _insert(dialect: str, first: int, last: int, half: int) -> str:
    """INSERT ... SELECT of messages ``first``..``last`` (1-based, in id order)."""
    concat = (lambda *p: f"CONCAT({', '.join(p)})") if dialect == "mysql" else (lambda *p: " || ".join(p))
    least, greatest = ("LEAST", "GREATEST") if dialect == "mysql" else ("MIN", "MAX")
    div = "DIV" if dialect == "mysql" else "/"
    # Second half: one in ten between users 1 and 2, the others between a and b (a != b).
    a = f"(CASE WHEN s.seq % 10 = 0 THEN s.seq % 2 ELSE s.seq % {USERS} END)"
    b = (
        f"(CASE WHEN s.seq % 10 = 0 THEN 1 - s.seq % 2 "
        f"ELSE (s.seq % {USERS} + 1 + (s.seq {div} {USERS}) % {USERS - 1}) % {USERS} END)"
    )
    public = f"s.seq <= {half}"
    return (
        "INSERT INTO messages (sender_id, recipient_id, conversation, body, client_msg_id, created_at) "
        f"SELECT CASE WHEN {public} THEN 1 + s.seq % {USERS} ELSE 1 + {a} END, "
        f"CASE WHEN {public} THEN NULL ELSE 1 + {b} END, "
        f"CASE WHEN {public} THEN 'public' ELSE "
        f"{concat(repr('dm:'), f'(1 + {least}({a}, {b}))', repr(':'), f'(1 + {greatest}({a}, {b}))')} END, "
        f"{concat(repr('message number '), 's.seq', repr(' of the benchmark, about a hundred bytes long, like a chat line'))}, "
        f"{concat(repr('b-'), 's.seq')}, :created_at "
        f"FROM {_source(dialect, first, last)} ORDER BY s.seq"
    )


async def load_messages(conn: AsyncConnection, rows: int, *, on_chunk: Callable[[int], None] | None = None) -> None:
    """Insert ``USERS`` users and ``rows`` messages (see the module docstring) in the database
    itself. Runs in the caller's transaction; ``on_chunk`` is told the rows inserted so far."""
    from chase.store.tables import users

    dialect = conn.dialect.name
    created_at = datetime(2026, 1, 1)
    await conn.execute(
        users.insert(),
        [{"username": f"user{i:03d}", "password_hash": "x", "created_at": created_at} for i in range(1, USERS + 1)],
    )
    half = rows // 2
    for first in range(1, rows + 1, CHUNK):
        last = min(first + CHUNK - 1, rows)
        await conn.execute(sa.text(_insert(dialect, first, last, half)), {"created_at": created_at})
        if on_chunk is not None:
            on_chunk(last)


# --- the cases ----------------------------------------------------------------------------------

Case = Callable[[random.Random], Awaitable[int]]


async def id_bounds(conn: AsyncConnection) -> tuple[int, int]:
    """The first private message's id and the last id (ids of a bulk insert may skip values)."""
    first_private = (await conn.execute(sa.text("SELECT MIN(id) FROM messages WHERE recipient_id IS NOT NULL"))).scalar()
    last = (await conn.execute(sa.text("SELECT MAX(id) FROM messages"))).scalar()
    return int(first_private), int(last)


def cases(store, first_private: int, last: int, page: int = 50) -> dict[str, Case]:  # noqa: ANN001 - MessageStore
    """Each kind of page the history service answers, with random depths; each returns the
    number of messages on its page. ``first_private``, ``last``: see :func:`id_bounds`."""
    half, rows = first_private - 1, last

    async def history(viewer: int, other: int | None, before: int | None) -> int:
        return len((await store.history(viewer, other, before, page)).messages)

    async def sync(viewer: int, after: int) -> int:
        return len((await store.sync(viewer, after, 200)).messages)

    return {
        "history, public, first page": lambda r: history(r.randint(1, USERS), None, None),
        "history, public, deep page": lambda r: history(r.randint(1, USERS), None, r.randint(page + 1, half)),
        "history, private, first page": lambda r: history(1, 2, None),
        "history, private, deep page": lambda r: history(1, 2, r.randint(half + 20 * page, rows)),
        "history, private, sparse pair": lambda r: history(SPARSE_VIEWER, SPARSE_VIEWER + r.randint(1, 40), None),
        "sync, dense (public room)": lambda r: sync(r.randint(3, USERS), r.randint(0, half - 400)),
        "sync, sparse (own private only)": lambda r: sync(SPARSE_VIEWER, r.randint(half, rows - half // 5)),
    }


async def measure(case: Case, samples: int, seconds: float, seed: int = 1) -> dict[str, float | int]:
    rnd = random.Random(seed)
    for _ in range(3):  # warm the connection pool and the caches a little
        await case(rnd)
    times: list[float] = []
    returned: list[int] = []
    deadline = time.monotonic() + seconds
    cpu_started = time.process_time()
    while len(times) < samples and time.monotonic() < deadline:
        start = time.perf_counter()
        returned.append(await case(rnd))
        times.append(time.perf_counter() - start)
    # This process's CPU (driver, SQLAlchemy, messages) per page: unlike the latencies, it
    # hardly moves when other processes share the machine.
    cpu = time.process_time() - cpu_started
    return {
        "samples": len(times),
        "p50_ms": round(percentile(times, 50) * 1000, 2),
        "p99_ms": round(percentile(times, 99) * 1000, 2),
        "cpu_ms": round(cpu / len(times) * 1000, 2),
        "rows_mean": round(statistics.fmean(returned), 1),
    }


async def run(server_url: str, rows: int, samples: int, seconds: float) -> dict[str, dict[str, float | int]]:
    from chase.clock import SystemClock
    from chase.store import migrate
    from chase.store.engine import create_engine
    from services.persistence.store import MessageStore

    name = f"chase_bench_{uuid.uuid4().hex[:8]}_history"
    url = infra.create_database(server_url, name)
    engine = create_engine(url)
    # Loading is bounded by the rows, not by the statement timeout the store runs with (an
    # INSERT ... SELECT of 100,000 rows takes more than its 5 s on a busy machine).
    loader = create_engine(url, statement_timeout=None)
    try:
        await migrate.upgrade(loader)
        started = time.monotonic()
        async with loader.begin() as conn:
            await load_messages(conn, rows, on_chunk=lambda n: print(f"  loaded {n:,} rows", flush=True))
        async with loader.begin() as conn:
            await conn.execute(sa.text("ANALYZE TABLE messages, users"))
            first_private, last = await id_bounds(conn)
        print(f"loaded {rows:,} messages in {time.monotonic() - started:.0f} s", flush=True)
        store = MessageStore(engine, SystemClock())
        kinds = cases(store, first_private, last)
        return {label: await measure(case, samples, seconds) for label, case in kinds.items()}
    finally:
        await loader.dispose()
        await engine.dispose()
        infra.drop_database(server_url, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="messages to load (default 1,000,000)")
    parser.add_argument("--samples", type=int, default=300, help="timed pages per kind at most (default 300)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time per kind at most (default 20 s)")
    parser.add_argument("--mariadb", default=DEFAULT_MARIADB, help="MariaDB server URL, without a database")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.mariadb, args.rows, args.samples, args.seconds))
    print(f"\n{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, {args.rows:,} messages, MariaDB "
          f"{infra.mariadb_version(args.mariadb)}\n")
    print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}, driver {make_url(args.mariadb).drivername}\n")
    print("| page | samples | p50 ms | p99 ms | client CPU ms per page | messages per page |\n|---|---|---|---|---|---|")
    for label, f in results.items():
        print(f"| {label} | {f['samples']} | {f['p50_ms']} | {f['p99_ms']} | {f['cpu_ms']} | {f['rows_mean']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
