"""The one consumer base class every worker builds on.

It owns the subscription, prefetch, batching, ack-after-handle, retries and dead-lettering, so
a worker implements only :meth:`BatchConsumer.consume_batch` (or :meth:`Consumer.consume`).

Life of a batch: deliveries are collected until ``max_batch`` arrived or ``max_wait`` seconds
passed since the first; ``consume_batch`` gets their events in delivery order. When it returns,
every delivery is acked. When it raises:

- a failure :meth:`BatchConsumer.is_transient` calls transient (database or broker down) is
  retried in place with back-off for as long as it takes, and never dead-letters anything;
  but deliveries that came on a channel that is gone are dropped from a failed batch instead,
  whatever the failure (the broker has already put them back, and whoever consumes now gets
  them again); the rest is tried again;
- a failure :meth:`BatchConsumer.steps_down` recognises (another worker took over) gives up
  the batch and everything prefetched, and consumes again, behind the new active consumer;
- a failure :meth:`BatchConsumer.is_outage` finds to come from an outage after all (the
  database does not answer right after an error its driver did not name) is retried in place
  the same way: splitting then would put one event back in the queue behind later ones;
- any other failure splits the batch in halves, recursively, so one poison event cannot
  block the others. An event that fails alone goes back to the broker, which counts its
  deliveries (the queue's ``delivery_limit``, RabbitMQ's ``x-delivery-limit``): on its last
  allowed attempt :meth:`BatchConsumer.on_poison` is told (so the sender can be) and it is
  dead-lettered. No attempt count lives in this process, so a crash forgets nothing.

A delivery may carry a *group*: several events published as one (:meth:`BatchConsumer.parts`
names them; a gateway's ``MessagesSubmitted``). It weighs as many events as it holds against
``max_batch``, and ``handle_batch`` sees it as one delivery. When a group fails alone, it is
split too: its parts are handled in halves like a batch of their own, the ones that work are
done, and a part that fails alone is **published again, alone**, on the group's routing key
(the broker counts that event's deliveries from then on, as for any other); the group is acked
once each part is done or published again. A group whose channel is gone meanwhile is left to
the broker, which delivers it again whole (parts done before are then handled again, so their
handling must be idempotent, as it is already for any redelivered batch).

Only one batch is in progress at a time per consumer, which keeps the queue order, and the
deliveries before a batch are all settled when it is acked: the bus may ack it with one message
(``Bus.ack_all``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from chase import metrics
from chase.bus.port import Bus, BusUnavailable, Delivery, QueueSpec, Subscription
from chase.logging import get_logger
from chase.schemas import Event

log = get_logger(__name__)

#: Longest pause between two attempts, however many have failed.
MAX_RETRY_DELAY = 5.0


class BatchConsumer:
    """Subclass, implement :meth:`consume_batch`, then ``await start()`` and later ``await stop()``."""

    def __init__(
        self,
        bus: Bus,
        queue: QueueSpec,
        *,
        max_batch: int = 200,
        max_wait: float = 0.02,
        retry_delay: float = 0.05,
        stop_timeout: float = 10.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.bus = bus
        self.queue = queue
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.retry_delay = retry_delay
        self.stop_timeout = stop_timeout
        self._pending: deque[Delivery] = deque()
        #: The events ``_pending`` holds, groups counted by their parts (see :meth:`weight`).
        self._pending_weight = 0
        self._arrived = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._deposed = False

    async def handle_batch(self, deliveries: list[Delivery]) -> None:
        """Override to see the deliveries (``redelivered``...); by default their events go to
        :meth:`consume_batch`. Same contract as :meth:`consume_batch`."""
        await self.consume_batch([d.event for d in deliveries])

    async def consume_batch(self, events: list[Event]) -> None:
        """Handle ``events`` (in delivery order) all or nothing, e.g. in one transaction.

        Return only when their effects are durable: every delivery is acked right after. Raise
        to have the batch retried; a raise must leave nothing half-done, since a part of the
        batch is handed in again.
        """
        raise NotImplementedError

    def is_transient(self, exc: Exception) -> bool:
        """Override: True for failures that are not the events' fault (database unreachable).

        Transient failures are retried without limit and without splitting; nothing is
        dead-lettered because of them.
        """
        return False

    async def is_outage(self, exc: Exception) -> bool:
        """Override: asked about a failure :meth:`is_transient` does not recognise, before the
        batch is split; True when it came from an outage after all (say, the database does not
        answer now). Then it is retried in place like a transient one.

        Splitting is only for events that fail on their own: an event that fails alone goes
        back to the broker and comes again after the events behind it, which are handled
        meanwhile. An outage must never get that far, or it reorders what it holds up.
        """
        return False

    def transient_pause(self, exc: Exception, attempt: int) -> float | None:
        """Override: how long to wait before retrying after the transient ``exc`` (None: the
        usual back-off, ``retry_delay`` doubling up to ``MAX_RETRY_DELAY``)."""
        return None

    def steps_down(self, exc: Exception) -> bool:
        """Override: True when ``exc`` means another consumer has taken over (a fenced writer).

        The batch and everything prefetched is given back and this consumer subscribes again,
        which puts it behind the active one (single active consumer) as a standby.
        """
        return False

    async def on_poison(self, delivery: Delivery, exc: Exception) -> None:
        """Override: ``delivery`` failed on its last allowed attempt and is dead-lettered next."""
        return None

    def parts(self, event: Event) -> Sequence[Event] | None:
        """Override: the events ``event`` carries when it is a group of them (published as one
        to save the broker work), else None. :meth:`handle_batch` must handle a group exactly
        as it would its parts delivered alone, in order: when the group fails alone, its parts
        are handed in one by one (see the module docstring)."""
        return None

    def weight(self, delivery: Delivery) -> int:
        """How many events ``delivery`` counts for against ``max_batch``: a group's parts."""
        parts = self.parts(delivery.event)
        return len(parts) if parts else 1

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
        self._pending_weight = 0

    async def _on_delivery(self, delivery: Delivery) -> None:
        # Never awaits and never raises: the bus hands the next delivery at once, and the
        # ack comes later from _run, after the batch is handled.
        self._pending.append(delivery)
        self._pending_weight += self.weight(delivery)
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
            while self._pending_weight < self.max_batch and not self._stopping:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take_batch()
            if not self._pending:
                self._arrived.clear()
            await self._handle(batch)
            if self._deposed and not self._stopping:
                await self._resubscribe()

    def _take_batch(self) -> list[Delivery]:
        """The oldest pending deliveries weighing at most ``max_batch`` (at least one)."""
        batch: list[Delivery] = []
        taken = 0
        while self._pending:
            weight = self.weight(self._pending[0])
            if batch and taken + weight > self.max_batch:
                break
            batch.append(self._pending.popleft())
            taken += weight
        self._pending_weight -= taken
        return batch

    async def _resubscribe(self) -> None:
        """Give back everything unacked and queue up again behind the active consumer."""
        self._deposed = False
        log.warning("consumer.stepped_down", queue=self.queue.name)
        self._pending.clear()
        self._pending_weight = 0
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None
        while not self._stopping:
            try:
                self._subscription = await self.bus.consume(
                    self.queue, self._on_delivery, prefetch=2 * self.max_batch
                )
                return
            except Exception as exc:  # noqa: BLE001 - broker down: try again, bounded pauses
                log.warning("consumer.resubscribe_failed", queue=self.queue.name, error=repr(exc))
                await self._pause(4)

    async def _handle(self, part: list[Delivery]) -> None:
        """Handle ``part`` until it is acked, given back, or dead-lettered (or we stop)."""
        transient = 0
        while not self._stopping:
            try:
                await self.handle_batch(part)
            except Exception as exc:
                if self.steps_down(exc):
                    self._deposed = True
                    return
                fresh = [d for d in part if not d.stale]
                if len(fresh) < len(part):
                    # Lost with its channel: the broker has those again, for whoever consumes.
                    # Whatever failed here, they are no longer ours to retry, split or
                    # dead-letter (a sender told "rejected" for a message the active consumer
                    # stores, say). Deliveries that came on the channel since (the connection
                    # came back meanwhile) are still ours: tried again, as they were.
                    log.warning("consumer.batch_abandoned", queue=self.queue.name,
                                size=len(part) - len(fresh), error=repr(exc))
                    if not fresh:
                        return
                    part = fresh
                    continue
                if self.is_transient(exc) or await self.is_outage(exc):
                    transient += 1
                    log.warning("consumer.transient_failure", queue=self.queue.name, error=repr(exc), attempt=transient)
                    await self._pause(transient, self.transient_pause(exc, transient))
                    continue
                if len(part) > 1:
                    log.warning("consumer.batch_failed_splitting", queue=self.queue.name, size=len(part),
                                error=repr(exc))
                    middle = len(part) // 2
                    await self._handle(part[:middle])
                    if not self._deposed:
                        await self._handle(part[middle:])
                    return
                events = self.parts(part[0].event)
                if events and len(events) > 1:
                    await self._split_group(part[0], events, exc)
                    return
                await self._failed_alone(part[0], exc)
                return
            # Every delivery before this part is settled (one part at a time, in order): one
            # ack covers the part.
            await self.bus.ack_all(part)
            return

    async def _split_group(self, group: Delivery, events: Sequence[Event], exc: Exception) -> None:
        """``group`` failed alone: handle its parts in halves; publish a part that fails alone
        again, alone; ack the group once every part is done or published again."""
        log.warning("consumer.group_failed_splitting", queue=self.queue.name, size=len(events), error=repr(exc))
        parts = [_Part(group, event) for event in events]
        middle = len(parts) // 2
        await self._handle(parts[:middle])
        if not self._deposed:
            await self._handle(parts[middle:])
        if self._deposed or not all(p.settled for p in parts):
            return  # stepped down, stopping or lost with its channel: the group comes back whole
        attempt = 0
        for part in (p for p in parts if p.returned):
            while True:
                if group.stale or self._stopping:
                    return  # the broker has the group again; its parts are handled again
                try:
                    await self.bus.publish(group.routing_key, part.event)
                    break
                except BusUnavailable as failure:
                    attempt += 1
                    log.warning("consumer.part_not_published", queue=self.queue.name, error=repr(failure),
                                attempt=attempt)
                    await self._pause(attempt)
            log.warning("consumer.part_published_alone", queue=self.queue.name, routing_key=group.routing_key,
                        event_type=part.event.type)
        await self.bus.ack_all([group])

    async def _failed_alone(self, delivery: Delivery, exc: Exception) -> None:
        if isinstance(delivery, _Part):
            # Published again alone by _split_group: from there the broker counts its
            # deliveries, and its last allowed attempt goes to on_poison as for any event.
            log.warning("consumer.part_failed", queue=self.queue.name, routing_key=delivery.routing_key,
                        error=repr(exc))
            await delivery.reject(requeue=True)
            return
        limit = self.queue.delivery_limit
        if limit is not None and delivery.delivery_count < limit:
            # Back to the broker, which counts it: the count survives this process.
            log.warning("consumer.event_failed", queue=self.queue.name, routing_key=delivery.routing_key,
                        attempt=delivery.delivery_count + 1, limit=limit, error=repr(exc))
            await delivery.reject(requeue=True)
            return
        try:
            await self.on_poison(delivery, exc)
        except Exception:  # noqa: BLE001 - telling is best effort; the event goes either way
            log.exception("consumer.on_poison_failed", queue=self.queue.name)
        await self._dead_letter(delivery, exc)

    async def _dead_letter(self, delivery: Delivery, exc: Exception) -> None:
        log.error("consumer.dead_letter", queue=self.queue.name, routing_key=delivery.routing_key,
                  event_type=delivery.event.type, attempts=delivery.delivery_count + 1, error=repr(exc))
        await delivery.reject(requeue=False)
        metrics.BUS_DEAD_LETTERED.labels(self.queue.name).inc()

    async def _pause(self, attempt: int, delay: float | None = None) -> None:
        if delay is None:
            delay = self.retry_delay * 2 ** (attempt - 1)
        delay = min(MAX_RETRY_DELAY, delay)
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

    def __init__(self, bus: Bus, queue: QueueSpec, *, retry_delay: float = 0.05) -> None:
        super().__init__(bus, queue, max_batch=1, max_wait=0.0, retry_delay=retry_delay)

    async def consume(self, event: Event) -> None:
        """Handle one event; return when its effects are durable, raise to have it retried."""
        raise NotImplementedError

    async def consume_batch(self, events: list[Event]) -> None:
        for event in events:
            await self.consume(event)


class _Part(Delivery):
    """One event of a group delivery, handled as if it had come alone. Settling it only marks
    it: the group is settled for all its parts, by :meth:`BatchConsumer._split_group`."""

    def __init__(self, group: Delivery, event: Event) -> None:
        self.event = event
        self.routing_key = group.routing_key
        self.redelivered = group.redelivered
        self.delivery_count = group.delivery_count
        self._group = group
        self.settled = False
        #: Failed alone: to be published again on its own.
        self.returned = False

    @property
    def stale(self) -> bool:
        return self._group.stale

    async def ack(self) -> None:
        self.settled = True

    async def reject(self, *, requeue: bool) -> None:
        self.settled = True
        self.returned = requeue
