"""The one consumer base class every worker builds on.

It owns the subscription, prefetch, batching, ack-after-handle, retries and dead-lettering, so
a worker implements only :meth:`BatchConsumer.consume_batch` (or :meth:`Consumer.consume`).

Life of a batch: deliveries are collected until ``max_batch`` arrived or ``max_wait`` seconds
passed since the first; ``consume_batch`` gets their events in delivery order. When it returns,
every delivery is acked. When it raises, the batch is retried; a batch that keeps failing is
split in halves, recursively, so one poison event cannot block the others: it is isolated,
retried up to ``max_attempts`` times on its own, then rejected without requeue (dead-lettered)
and logged. Failures that :meth:`BatchConsumer.is_transient` calls transient (the database is
down) are retried with back-off for as long as it takes and never dead-letter anything.

Only one batch is in progress at a time per consumer, which keeps the queue order.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque

from chase import metrics
from chase.bus.port import Bus, Delivery, QueueSpec, Subscription
from chase.logging import get_logger
from chase.schemas import Event

log = get_logger(__name__)

#: Longest pause between two attempts, however many have failed.
MAX_RETRY_DELAY = 5.0


class BatchConsumer(abc.ABC):
    """Subclass, implement :meth:`consume_batch`, then ``await start()`` and later ``await stop()``."""

    def __init__(
        self,
        bus: Bus,
        queue: QueueSpec,
        *,
        max_batch: int = 200,
        max_wait: float = 0.02,
        max_attempts: int = 5,
        retry_delay: float = 0.05,
        stop_timeout: float = 10.0,
    ) -> None:
        if max_batch < 1 or max_attempts < 1:
            raise ValueError("max_batch and max_attempts must be at least 1")
        self.bus = bus
        self.queue = queue
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.stop_timeout = stop_timeout
        self._pending: deque[Delivery] = deque()
        self._arrived = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None

    @abc.abstractmethod
    async def consume_batch(self, events: list[Event]) -> None:
        """Handle ``events`` (in delivery order) all or nothing, e.g. in one transaction.

        Return only when their effects are durable: every delivery is acked right after. Raise
        to have the batch retried; a raise must leave nothing half-done, since a part of the
        batch is handed in again.
        """

    def is_transient(self, exc: Exception) -> bool:
        """Override: True for failures that are not the events' fault (database unreachable).

        Transient failures are retried without limit and without splitting; nothing is
        dead-lettered because of them.
        """
        return False

    @property
    def stopping(self) -> bool:
        """True from the moment :meth:`stop` is called."""
        return self._stopping

    async def start(self) -> None:
        """Subscribe with prefetch ``2 * max_batch``; call :meth:`stop` when done."""
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"consumer:{self.queue.name}")
        self._subscription = await self.bus.consume(self.queue, self._on_delivery, prefetch=2 * self.max_batch)

    async def stop(self) -> None:
        """Finish the batch in progress, then cancel: everything unacked goes back to the queue."""
        self._stopping = True
        self._arrived.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.stop_timeout)
            except TimeoutError:
                log.warning("consumer.stop_timeout", queue=self.queue.name)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None
        self._pending.clear()

    async def _on_delivery(self, delivery: Delivery) -> None:
        # Never awaits and never raises: the bus hands the next delivery at once, and the
        # ack comes later from _run, after the batch is handled.
        self._pending.append(delivery)
        self._arrived.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await self._arrived.wait()
            if self._stopping:
                return
            if not self._pending:
                self._arrived.clear()
                continue
            deadline = loop.time() + self.max_wait
            while len(self._pending) < self.max_batch and not self._stopping:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            if not self._pending:
                self._arrived.clear()
            await self._handle(batch)

    async def _handle(self, part: list[Delivery]) -> None:
        """Handle ``part`` until it is acked or its poison is dead-lettered (or we stop)."""
        failures = 0
        transient = 0
        while not self._stopping:
            try:
                await self.consume_batch([d.event for d in part])
            except Exception as exc:
                if self.is_transient(exc):
                    transient += 1
                    log.warning("consumer.transient_failure", queue=self.queue.name, error=repr(exc), attempt=transient)
                    await self._pause(transient)
                    continue
                failures += 1
                if len(part) > 1 and failures >= min(2, self.max_attempts):
                    middle = len(part) // 2
                    await self._handle(part[:middle])
                    await self._handle(part[middle:])
                    return
                if failures >= self.max_attempts:
                    await self._dead_letter(part[0], exc)
                    return
                log.warning("consumer.batch_failed", queue=self.queue.name, size=len(part), attempt=failures,
                            error=repr(exc))
                await self._pause(failures)
                continue
            for delivery in part:
                await delivery.ack()
            return

    async def _dead_letter(self, delivery: Delivery, exc: Exception) -> None:
        log.error("consumer.dead_letter", queue=self.queue.name, routing_key=delivery.routing_key,
                  event_type=delivery.event.type, attempts=self.max_attempts, error=repr(exc))
        await delivery.reject(requeue=False)
        metrics.BUS_DEAD_LETTERED.labels(self.queue.name).inc()

    async def _pause(self, attempt: int) -> None:
        delay = min(MAX_RETRY_DELAY, self.retry_delay * 2 ** (attempt - 1))
        if delay <= 0:
            await asyncio.sleep(0)
            return
        # Wake early on stop(), so a consumer waiting out an outage stops promptly.
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._wait_stopping(), delay)
        except TimeoutError:
            pass
        if self._pending:
            self._arrived.set()

    async def _wait_stopping(self) -> None:
        while not self._stopping:
            await self._arrived.wait()
            self._arrived.clear()


class Consumer(BatchConsumer):
    """One event at a time: implement :meth:`consume`; same acks, retries and dead-lettering."""

    def __init__(self, bus: Bus, queue: QueueSpec, *, max_attempts: int = 5, retry_delay: float = 0.05) -> None:
        super().__init__(bus, queue, max_batch=1, max_wait=0.0, max_attempts=max_attempts, retry_delay=retry_delay)

    @abc.abstractmethod
    async def consume(self, event: Event) -> None:
        """Handle one event; return when its effects are durable, raise to have it retried."""

    async def consume_batch(self, events: list[Event]) -> None:
        for event in events:
            await self.consume(event)
