"""One stage of the pipeline alone: the persistence worker draining a full queue.

The end-to-end figures say how fast the whole system is; this says how fast the worker is when
nothing else limits it, and where its time goes. A durable ``persistence.submitted`` queue is
filled with ``messages`` submissions first, then ChaSe's own :class:`PersistenceWorker` (the
real class, on the real RabbitMQ and MariaDB, in this process) is started and timed until the
last ``message.stored`` event reaches a queue bound like a gateway's.

The worker is given its dependencies wrapped, never patched: a store that adds up the time of
each ``store_batch`` (the transaction) and a RabbitMQ bus subclass that adds up the time of each
confirmed batch of stored events. Whatever is left is the consumer's own overhead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bench.baselines import body_of, fresh_schema
from bench.stats import batch_sizes, latency_summary, rate


class _TimedStore:
    """A BatchStore that delegates to ChaSe's MessageStore and times each batch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.sizes: list[int] = []

    async def store_batch(self, submitted: Sequence[Any]) -> list[Any]:
        started = time.perf_counter()
        try:
            return await self.inner.store_batch(submitted)
        finally:
            self.seconds += time.perf_counter() - started
            self.sizes.append(len(submitted))


def _timed_bus_class():  # noqa: ANN202 - imported lazily, like the adapter itself
    from chase.bus.rabbitmq import RabbitBus

    class TimedRabbitBus(RabbitBus):
        """RabbitBus that records how long each batch of stored events took to be confirmed."""

        stored_publishes: list[float]

        async def publish_many(self, items: Any) -> None:
            started = time.perf_counter()
            await super().publish_many(items)
            if any(key.startswith("message.stored") for key, _ in items):
                self.stored_publishes.append(time.perf_counter() - started)

    return TimedRabbitBus


async def worker_drain(amqp_url: str, namespace: str, database_url: str, *, messages: int, publishers: int = 8,
                       batch: int = 200, batch_wait: float = 0.02, time_limit: float = 60.0) -> dict[str, Any]:
    """Fill the worker's queue with ``messages`` submissions, then time the worker draining it.

    ``namespace`` must be the run's own; its queues and exchanges are deleted by the caller.
    """
    from chase import routing
    from chase.bus.port import Delivery, QueueSpec
    from chase.clock import SystemClock
    from chase.schemas import MessageSubmitted, UserRef
    from services.persistence.store import MessageStore
    from services.persistence.worker import PersistenceWorker

    engine, user_ids = await fresh_schema(database_url, publishers)
    bus = _timed_bus_class()(amqp_url, namespace)
    bus.stored_publishes = []
    store = _TimedStore(MessageStore(engine, SystemClock()))
    received = 0
    last_received = 0.0
    all_received = asyncio.Event()

    async def sink(delivery: Delivery) -> None:
        nonlocal received, last_received
        # A run of a batch comes as one MessagesStored (ChaSe since it has that event).
        received += len(getattr(delivery.event, "items", ())) or 1
        await delivery.ack()
        if received >= messages and not all_received.is_set():
            last_received = time.perf_counter()
            all_received.set()

    try:
        await bus.start()
        # A worker that starts and stops leaves its durable queue declared and empty.
        probe = PersistenceWorker(bus, store, max_batch=batch, max_wait=batch_wait)
        await probe.start()
        await probe.stop()
        sink_queue = QueueSpec("bench-sink", bindings=(routing.MESSAGE_STORED_PUBLIC,), durable=False,
                               exclusive=True)
        subscription = await bus.consume(sink_queue, sink, prefetch=200)

        now = datetime.now(UTC)
        submitted = [
            MessageSubmitted(
                sender=UserRef(id=user_ids[n % publishers], username=f"bench{n % publishers}"),
                recipient_id=None, body=body_of(100, n), client_msg_id=f"drain-{n}", submitted_at=now,
            )
            for n in range(messages)
        ]

        async def fill(part: list[MessageSubmitted]) -> None:
            for event in part:
                await bus.publish(routing.MESSAGE_SUBMITTED, event)

        async with asyncio.timeout(time_limit):
            await asyncio.gather(*(fill(submitted[i::publishers]) for i in range(publishers)))

        worker = PersistenceWorker(bus, store, max_batch=batch, max_wait=batch_wait)
        store.seconds, store.sizes = 0.0, []
        started = time.perf_counter()
        complete = True
        await worker.start()
        try:
            async with asyncio.timeout(time_limit):
                await all_received.wait()
        except TimeoutError:
            complete = False
            last_received = time.perf_counter()
        finally:
            await worker.stop()
            await subscription.cancel()
    finally:
        await bus.close()
        await engine.dispose()

    elapsed = last_received - started
    publish_seconds = sum(bus.stored_publishes)
    return {
        "messages": messages,
        "complete": complete,
        "stored_events_received": received,
        "seconds": round(elapsed, 3),
        "msgs_per_s": rate(received, elapsed),
        "batches": batch_sizes(store.sizes),
        "store_batch_seconds": round(store.seconds, 3),
        "publish_stored_seconds": round(publish_seconds, 3),
        "store_share": round(store.seconds / elapsed, 3) if elapsed > 0 else None,
        "publish_share": round(publish_seconds / elapsed, 3) if elapsed > 0 else None,
        "publish_confirm": latency_summary(bus.stored_publishes),
    }
