"""The ceilings of this machine's infrastructure, measured without ChaSe in the way.

- :func:`broker_baseline`: raw aio-pika, the publish pattern ChaSe's gateway uses (persistent
  messages to a durable topic exchange, publisher confirms, each publisher awaiting one confirm
  at a time, several publishers sharing one confirm channel as a gateway's connections do) into
  a quorum queue, and a consumer acking each message.
- :func:`insert_baseline`: SQLAlchemy Core ``executemany`` of rows shaped like
  ``chase.store.tables.messages``, one transaction per batch, as the persistence worker's INSERT.
- :func:`store_batch_baseline`: ChaSe's own ``MessageStore.store_batch`` called in-process (the
  worker's whole transaction: lease renewal, resend look-up, one read of names, largest id and
  last ids, INSERT), no bus at all.

The two database ones side by side, alone (a minute; ``--mariadb`` takes ``mysql+aiomysql://``
too)::

    .venv/bin/python -m bench.baselines --rows 20000
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bench.infra import delete_namespace
from bench.stats import latency_summary, rate


def body_of(size: int, n: int) -> str:
    """An ASCII body of exactly ``size`` characters, different for each ``n``."""
    head = f"benchmark message {n} "
    return (head + "x" * size)[:size]


# --- broker --------------------------------------------------------------------------------------


async def broker_baseline(
    amqp_url: str,
    namespace: str,
    *,
    messages: int,
    publishers: int,
    body_size: int = 100,
    prefetch: int = 200,
    time_limit: float = 60.0,
    queue_type: str = "quorum",
) -> dict[str, Any]:
    """Publish ``messages`` with ``publishers`` concurrent confirm-awaiting loops; consume and ack.

    The rate is messages consumed (and acked) per second from the first publish to the last
    consume: a message counts once the broker confirmed it and the consumer received it.
    ``queue_type`` ``classic`` is for comparison only: ChaSe's durable queues are quorum queues
    (they keep messages across the loss of a node).
    """
    import aio_pika

    relative = f"baseline-{queue_type}-p{publishers}"
    name = f"{namespace}.{relative}"
    publish_conn = await aio_pika.connect(amqp_url, timeout=10)
    consume_conn = await aio_pika.connect(amqp_url, timeout=10)
    confirms: list[float] = []
    consumed = 0
    all_consumed = asyncio.Event()
    first_publish = last_consume = last_confirm = 0.0
    complete = False
    try:
        channel = await publish_conn.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue_channel = await consume_conn.channel()
        await queue_channel.set_qos(prefetch_count=prefetch)
        queue = await queue_channel.declare_queue(name, durable=True, arguments={"x-queue-type": queue_type})
        await queue.bind(name, routing_key="baseline.#")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal consumed, last_consume
            await message.ack()
            consumed += 1
            if consumed >= messages:
                last_consume = time.perf_counter()
                all_consumed.set()

        consumer_tag = await queue.consume(on_message)
        body = body_of(body_size, 0).encode()

        async def publisher(count: int) -> None:
            nonlocal last_confirm
            for _ in range(count):
                message = aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=uuid.uuid4().hex,
                )
                started = time.perf_counter()
                await exchange.publish(message, "baseline.msg", mandatory=False)
                last_confirm = time.perf_counter()
                confirms.append(last_confirm - started)

        shares = [messages // publishers + (1 if i < messages % publishers else 0) for i in range(publishers)]
        first_publish = time.perf_counter()
        try:
            async with asyncio.timeout(time_limit):
                await asyncio.gather(*(publisher(n) for n in shares))
                await all_consumed.wait()
                complete = True
        except TimeoutError:
            last_consume = time.perf_counter()
        await queue.cancel(consumer_tag)
    finally:
        await consume_conn.close()
        await publish_conn.close()
        # Whatever happened above: the run's queue and exchange do not outlive it.
        leftovers = await delete_namespace(amqp_url, namespace, [relative], [relative])
    if leftovers:
        raise RuntimeError("; ".join(leftovers))
    return {
        "messages": messages,
        "publishers": publishers,
        "queue_type": queue_type,
        "body_bytes": body_size,
        "complete": complete,
        "consumed": consumed,
        "seconds": round(last_consume - first_publish, 3),
        "msgs_per_s": rate(consumed, last_consume - first_publish),
        "confirmed_per_s": rate(len(confirms), last_confirm - first_publish),
        "publish_confirm": latency_summary(confirms),
    }


# --- database ------------------------------------------------------------------------------------


async def fresh_schema(url: str, users: int):  # noqa: ANN202 - returns (engine, user ids)
    """Migrate the empty database at ``url`` and add ``users`` users; the caller disposes the engine."""
    import sqlalchemy as sa

    from chase.store import migrate
    from chase.store.engine import create_engine
    from chase.store.tables import users as users_table

    engine = create_engine(url)
    await migrate.upgrade(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    async with engine.begin() as conn:
        await conn.execute(
            users_table.insert(),
            [{"username": f"bench{i}", "password_hash": "x" * 60, "created_at": now} for i in range(users)],
        )
        ids = (await conn.execute(sa.select(users_table.c.id).order_by(users_table.c.id))).scalars().all()
    return engine, list(ids)


async def insert_baseline(url: str, *, rows: int, batch: int = 200, body_size: int = 100,
                          users: int = 8) -> dict[str, Any]:
    """INSERT ``rows`` message rows in batches of ``batch``, one transaction per batch.

    ``url`` must name an empty database (the schema is migrated here). Rows are built before
    the clock starts, so only the database round-trips are timed.
    """
    from chase.store.tables import messages

    engine, user_ids = await fresh_schema(url, users)
    try:
        now = datetime.now(UTC).replace(tzinfo=None)
        all_rows = [
            {
                "sender_id": user_ids[n % len(user_ids)],
                "recipient_id": None,
                "conversation": "public",
                "body": body_of(body_size, n),
                "client_msg_id": f"raw-{n}",
                "created_at": now,
            }
            for n in range(rows)
        ]

        async def insert(offset: int) -> None:
            async with engine.begin() as conn:
                await conn.execute(messages.insert(), all_rows[offset : offset + batch])

        return await _timed_batches(rows, batch, insert)
    finally:
        await engine.dispose()


async def store_batch_baseline(url: str, *, rows: int, batch: int = 200, body_size: int = 100,
                               users: int = 8) -> dict[str, Any]:
    """ChaSe's ``MessageStore.store_batch`` on batches of ``batch`` new messages, in-process."""
    from chase.clock import SystemClock
    from chase.schemas import MessageSubmitted, UserRef
    from services.persistence.store import MessageStore

    engine, user_ids = await fresh_schema(url, users)
    try:
        store = MessageStore(engine, SystemClock())
        now = datetime.now(UTC)
        submitted = [
            MessageSubmitted(
                sender=UserRef(id=user_ids[n % len(user_ids)], username=f"bench{n % len(user_ids)}"),
                recipient_id=None,
                body=body_of(body_size, n),
                client_msg_id=f"store-{n}",
                submitted_at=now,
            )
            for n in range(rows)
        ]

        async def store_one(offset: int) -> None:
            await store.store_batch(submitted[offset : offset + batch])

        return await _timed_batches(rows, batch, store_one)
    finally:
        await engine.dispose()


async def _timed_batches(rows: int, batch: int, run_batch: Callable[[int], Awaitable[None]]) -> dict[str, Any]:
    """Time ``run_batch(offset)`` for each batch of ``rows``: the rate, per-batch latency, and
    this process's CPU per row (which, unlike the rate, hardly moves with the neighbours)."""
    batches: list[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for offset in range(0, rows, batch):
        t0 = time.perf_counter()
        await run_batch(offset)
        batches.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return {
        "rows": rows,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "rows_per_s": rate(rows, elapsed),
        "cpu_us_per_row": round((time.process_time() - cpu_started) / rows * 1e6, 1),
        "batch_commit": latency_summary(batches),
    }


async def _database_baselines(server_url: str, rows: int, batch: int) -> dict[str, dict[str, Any]]:
    from bench import infra

    out = {}
    for purpose, measure in (("raw", insert_baseline), ("store", store_batch_baseline)):
        name = f"chase_bench_{uuid.uuid4().hex[:8]}_{purpose}"
        url = infra.create_database(server_url, name)
        try:
            out[purpose] = await measure(url, rows=rows, batch=batch)
        finally:
            infra.drop_database(server_url, name)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="python -m bench.baselines",
                                     description="MariaDB bulk INSERT against ChaSe's store_batch, in one run")
    parser.add_argument("--rows", type=int, default=20_000, help="rows for each (default 20,000)")
    parser.add_argument("--batch", type=int, default=200, help="rows per transaction (default 200)")
    parser.add_argument("--mariadb", default="mysql+asyncmy://root@127.0.0.1:3306", help="server URL, no database")
    args = parser.parse_args(argv)
    results = asyncio.run(_database_baselines(args.mariadb, args.rows, args.batch))
    print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}, {args.mariadb.split(':')[0]}")
    for purpose, figures in results.items():
        latency = figures["batch_commit"]
        print(f"{purpose}: {figures['rows_per_s']:,.0f} rows/s, {figures['cpu_us_per_row']} CPU us/row, "
              f"batch p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms")
    print(f"store_batch / INSERT: {results['store']['rows_per_s'] / results['raw']['rows_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
