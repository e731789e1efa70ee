"""The consumer base class on the in-process bus: retries, transient failures, stop, Consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from chase.bus.consumer import BatchConsumer, Consumer
from chase.bus.memory import MemoryBus
from chase.bus.port import Delivery, QueueSpec
from chase.schemas import Event, MessagesSubmitted, MessageSubmitted, SessionRevoked, UserRef
from tests.helpers import wait_until

QUEUE = QueueSpec("work", bindings=("work",))
#: The broker allows two returns: three attempts in all, counted by the bus, not the consumer.
LIMITED = QueueSpec("work", bindings=("work",), delivery_limit=2)


def ev(tag: str) -> SessionRevoked:
    return SessionRevoked(user_id=1, session_id=tag)


def tag(event: Event) -> str:
    return event.session_id  # type: ignore[union-attr]


async def started_bus() -> MemoryBus:
    bus = MemoryBus("unit")
    await bus.start()
    return bus


async def dead_letters(bus: MemoryBus) -> list[str]:
    seen: list[str] = []

    async def record(delivery: Delivery) -> None:
        seen.append(tag(delivery.event))
        await delivery.ack()

    await bus.consume(QueueSpec("dead-letter"), record)
    return seen


class Flaky(BatchConsumer):
    """Fails with a transient error a given number of times, then works."""

    def __init__(self, bus: MemoryBus, failures: int) -> None:
        super().__init__(bus, LIMITED, max_batch=10, max_wait=0.5, retry_delay=0)
        self.failures = failures
        self.calls = 0
        self.handled: list[str] = []

    def is_transient(self, exc: Exception) -> bool:
        return isinstance(exc, ConnectionError)

    async def consume_batch(self, events: list[Event]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database unreachable")
        self.handled.extend(tag(e) for e in events)


async def test_transient_failures_are_retried_and_never_dead_letter() -> None:
    bus = await started_bus()
    dead = await dead_letters(bus)
    consumer = Flaky(bus, failures=6)  # more failures than the delivery limit allows
    await consumer.start()
    for i in range(4):
        await bus.publish("work", ev(f"t{i}"))
    await wait_until(lambda: len(consumer.handled) == 4)
    await consumer.stop()
    assert consumer.handled == ["t0", "t1", "t2", "t3"]
    assert dead == []
    await bus.close()


class Gated(BatchConsumer):
    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus, QUEUE, max_batch=2, max_wait=0.5)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.handled: list[str] = []

    async def consume_batch(self, events: list[Event]) -> None:
        self.entered.set()
        await self.release.wait()
        self.handled.extend(tag(e) for e in events)


async def test_stop_finishes_the_batch_in_progress_and_returns_the_rest() -> None:
    bus = await started_bus()
    consumer = Gated(bus)
    await consumer.start()
    for i in range(5):
        await bus.publish("work", ev(f"g{i}"))
    await consumer.entered.wait()
    stopping = asyncio.ensure_future(consumer.stop())
    await wait_until(lambda: consumer.stopping)  # stop() began; it must wait for the batch, not cut it
    assert not stopping.done()
    consumer.release.set()
    await stopping
    assert consumer.handled == ["g0", "g1"]

    rest: list[Delivery] = []

    async def take(delivery: Delivery) -> None:
        rest.append(delivery)
        await delivery.ack()

    await bus.consume(QUEUE, take)
    await wait_until(lambda: len(rest) == 3)
    assert [tag(d.event) for d in rest] == ["g2", "g3", "g4"]
    await bus.close()


class OneByOne(Consumer):
    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus, LIMITED, retry_delay=0)
        self.attempts: dict[str, int] = {}
        self.handled: list[str] = []
        self.poisoned: list[tuple[str, int]] = []

    async def on_poison(self, delivery: Delivery, exc: Exception) -> None:
        self.poisoned.append((tag(delivery.event), delivery.delivery_count))

    async def consume(self, event: Event) -> None:
        self.attempts[tag(event)] = self.attempts.get(tag(event), 0) + 1
        if tag(event) == "bad":
            raise ValueError("cannot handle this one")
        self.handled.append(tag(event))


async def test_consumer_handles_one_at_a_time_and_dead_letters_at_the_delivery_limit() -> None:
    bus = await started_bus()
    dead = await dead_letters(bus)
    consumer = OneByOne(bus)
    await consumer.start()
    for name in ("a", "bad", "b"):
        await bus.publish("work", ev(name))
    await wait_until(lambda: consumer.handled == ["a", "b"] and dead == ["bad"])
    await consumer.stop()
    assert consumer.attempts == {"a": 1, "bad": 3, "b": 1}
    # Told once, on the last attempt the broker allows (two returns before it).
    assert consumer.poisoned == [("bad", 2)]
    await bus.close()


class Splitter(BatchConsumer):
    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus, QueueSpec("work", bindings=("work",), delivery_limit=3), max_batch=8, max_wait=0.5,
                         retry_delay=0)
        self.calls: list[list[str]] = []
        self.handled: list[str] = []

    async def consume_batch(self, events: list[Event]) -> None:
        names = [tag(e) for e in events]
        self.calls.append(names)
        if "p5" in names:
            raise ValueError("poison")
        self.handled.extend(names)


async def test_poison_is_isolated_by_halving_and_tried_alone_up_to_the_delivery_limit() -> None:
    bus = await started_bus()
    dead = await dead_letters(bus)
    # Declare first so that all eight arrive as one batch.
    async def ignore(delivery: Delivery) -> None:
        pass

    await (await bus.consume(QueueSpec("work", bindings=("work",), delivery_limit=3), ignore)).cancel()
    for i in range(8):
        await bus.publish("work", ev(f"p{i}"))
    consumer = Splitter(bus)
    await consumer.start()
    await wait_until(lambda: dead == ["p5"] and len(consumer.handled) == 7)
    await consumer.stop()
    assert consumer.calls[0] == [f"p{i}" for i in range(8)]
    assert consumer.handled == ["p0", "p1", "p2", "p3", "p4", "p6", "p7"]
    assert consumer.calls.count(["p5"]) == 4
    await bus.close()


class CutMidBatch(BatchConsumer):
    """Stands for a worker whose database link is cut while it holds a batch: the driver fails
    with an error nobody named as transient (its transport is closed), then every attempt
    fails until the link is back (after ``down_for`` attempts)."""

    def __init__(self, bus: MemoryBus, *, down_for: int, recognised: bool) -> None:
        super().__init__(bus, QueueSpec("work", bindings=("work",), delivery_limit=5), max_batch=10,
                         max_wait=0.5, retry_delay=0)
        self.down_for = down_for
        self.recognised = recognised
        self.calls = 0
        self.handled: list[str] = []

    @property
    def down(self) -> bool:
        return self.calls <= self.down_for

    async def is_outage(self, exc: Exception) -> bool:
        return self.recognised and self.down  # as a probe of the database would find

    async def consume_batch(self, events: list[Event]) -> None:
        self.calls += 1
        if self.down:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")
        self.handled.extend(tag(e) for e in events)


@pytest.mark.parametrize("recognised", [True, False])
async def test_an_outage_the_driver_does_not_name_keeps_the_order_only_when_recognised(recognised: bool) -> None:
    bus = await started_bus()
    dead = await dead_letters(bus)

    async def ignore(delivery: Delivery) -> None:
        pass

    await (await bus.consume(QueueSpec("work", bindings=("work",), delivery_limit=5), ignore)).cancel()
    for i in range(4):
        await bus.publish("work", ev(f"o{i}"))
    consumer = CutMidBatch(bus, down_for=3, recognised=recognised)
    await consumer.start()
    await wait_until(lambda: len(consumer.handled) == 4)
    await consumer.stop()
    assert dead == []
    if recognised:
        # Retried in place as a whole until the database is back: stored in the order sent.
        assert consumer.handled == ["o0", "o1", "o2", "o3"]
    else:
        # The mechanism is_outage exists for: split, o0 fails alone and goes back to the
        # queue, o1 (then the rest) are stored before it comes again.
        assert consumer.handled == ["o1", "o2", "o3", "o0"]
    await bus.close()


class Fenced(BatchConsumer):
    """Stands for a worker whose writer lease was taken over while it held a batch."""

    def __init__(self, bus: MemoryBus, name: str, deposed: bool = False) -> None:
        super().__init__(bus, QueueSpec("work", bindings=("work",), single_active_consumer=True), max_batch=5,
                         max_wait=0.05, retry_delay=0)
        self.name = name
        self.deposed = deposed
        self.handled: list[str] = []

    def steps_down(self, exc: Exception) -> bool:
        return isinstance(exc, PermissionError)

    async def consume_batch(self, events: list[Event]) -> None:
        if self.deposed:
            self.deposed = False
            raise PermissionError("fenced out")
        self.handled.extend(tag(e) for e in events)


async def test_a_consumer_that_steps_down_gives_everything_back_and_queues_behind_the_other() -> None:
    bus = await started_bus()
    first, second = Fenced(bus, "first", deposed=True), Fenced(bus, "second")
    await first.start()
    await second.start()
    for i in range(6):
        await bus.publish("work", ev(f"s{i}"))
    # The first (active) consumer is fenced out on its first batch: it steps down, and the
    # second one, now active, handles everything, in order, once.
    await wait_until(lambda: len(second.handled) == 6)
    assert second.handled == [f"s{i}" for i in range(6)] and first.handled == []
    await bus.publish("work", ev("later"))
    await wait_until(lambda: "later" in second.handled)
    assert first.handled == []
    await first.stop()
    await second.stop()
    await bus.close()


async def test_a_batch_lost_with_its_channel_is_dropped_not_retried() -> None:
    bus = await started_bus()
    consumer = Flaky(bus, failures=1_000_000)  # the store stays down
    await consumer.start()
    await bus.publish("work", ev("x"))
    await wait_until(lambda: consumer.calls >= 1)
    # The subscription goes (the broker connection died): the retries stop, the event is back
    # in the queue for whoever consumes next.
    subscription = consumer._subscription
    assert subscription is not None
    await subscription.cancel()
    calls = consumer.calls
    taken: list[Delivery] = []

    async def take(delivery: Delivery) -> None:
        taken.append(delivery)
        await delivery.ack()

    await bus.consume(LIMITED, take)
    await wait_until(lambda: [tag(d.event) for d in taken] == ["x"])
    assert taken[0].redelivered
    # And the old consumer gave up on it: with no pause between retries, one still retrying
    # would have made hundreds of calls while the event went round.
    assert consumer.calls <= calls + 1
    await asyncio.wait_for(consumer.stop(), 1)
    assert consumer.handled == []
    await bus.close()


class HeldDelivery(Delivery):
    """A delivery whose channel may be gone (``stale``), recording how it was settled."""

    def __init__(self, name: str, *, stale: bool) -> None:
        self.event = ev(name)
        self.routing_key = "work"
        self.redelivered = False
        self._stale = stale
        self.settled: str | None = None

    @property
    def stale(self) -> bool:
        return self._stale

    async def ack(self) -> None:
        self.settled = "ack"

    async def reject(self, *, requeue: bool) -> None:
        self.settled = "requeue" if requeue else "drop"


async def test_after_a_reconnect_only_the_deliveries_of_the_lost_channel_are_dropped() -> None:
    # A batch can hold deliveries from before a broker reconnect (their channel is gone, the
    # broker has them again) and from after it (still ours): the new ones are retried, not
    # left unsettled behind the next batch.
    bus = await started_bus()
    consumer = Flaky(bus, failures=2)
    old, new = HeldDelivery("old", stale=True), HeldDelivery("new", stale=False)
    await consumer._handle([old, new])
    assert consumer.handled == ["new"]
    assert (old.settled, new.settled) == (None, "ack")
    await bus.close()


class PausedThenFailing(BatchConsumer):
    """Stands for a worker paused while it held a batch (the broker gave the batch to another
    meanwhile) whose attempt then fails for a reason that is not transient."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus, QueueSpec("work", bindings=("work",), delivery_limit=0), max_batch=10,
                         max_wait=0.05, retry_delay=0)
        self.holding = asyncio.Event()
        self.resume = asyncio.Event()
        self.poisoned: list[str] = []

    async def consume_batch(self, events: list[Event]) -> None:
        self.holding.set()
        await self.resume.wait()
        raise ValueError("the connection under it is gone")

    async def on_poison(self, delivery: Delivery, exc: Exception) -> None:
        self.poisoned.append(tag(delivery.event))


async def test_a_batch_lost_with_its_channel_is_never_split_or_dead_lettered() -> None:
    bus = await started_bus()
    consumer = PausedThenFailing(bus)  # no returns allowed: any failure alone would be its last
    await consumer.start()
    for name in ("y", "z"):
        await bus.publish("work", ev(name))
    await consumer.holding.wait()
    subscription = consumer._subscription
    assert subscription is not None
    await subscription.cancel()  # the broker dropped it: both events are back with the broker
    consumer.resume.set()
    await asyncio.sleep(0.1)
    await asyncio.wait_for(consumer.stop(), 1)
    # Its senders are told nothing: what becomes of the events is the broker's and the next
    # consumer's business now (before, it split the batch and told both "rejected").
    assert consumer.poisoned == []
    await bus.close()


# --- groups: one delivery carrying several events ---------------------------------------------


def send(name: str) -> MessageSubmitted:
    return MessageSubmitted(sender=UserRef(id=1, username="u"), recipient_id=None, body=name, client_msg_id=name,
                            submitted_at=datetime(2026, 1, 1, tzinfo=UTC))


class GroupSplitter(BatchConsumer):
    """Fails any batch holding the event "bad"; its groups are ``MessagesSubmitted``."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus, QueueSpec("work", bindings=("work",), delivery_limit=3), max_batch=10, max_wait=0.05,
                         retry_delay=0)
        self.handled: list[str] = []
        self.lose_channel_of: HeldGroup | None = None

    def parts(self, event: Event) -> Sequence[Event] | None:
        return event.items if isinstance(event, MessagesSubmitted) else None

    async def consume_batch(self, events: list[Event]) -> None:
        names = [e.body for e in events]  # type: ignore[union-attr]
        if "bad" in names:
            if self.lose_channel_of is not None and len(names) < len(self.lose_channel_of.event.items):
                self.lose_channel_of.stale_now = True  # lost while the group is being split
            raise ValueError("poison")
        self.handled.extend(names)


class HeldGroup(HeldDelivery):
    def __init__(self, *names: str) -> None:
        super().__init__("group", stale=False)
        self.event = MessagesSubmitted(items=[send(n) for n in names])
        self.stale_now = False

    @property
    def stale(self) -> bool:
        return self.stale_now


async def published_alone(bus: MemoryBus) -> list[str]:
    seen: list[str] = []

    async def record(delivery: Delivery) -> None:
        seen.append(delivery.event.body)  # type: ignore[union-attr]
        await delivery.ack()

    await bus.consume(QueueSpec("observer", bindings=("work",), durable=False), record)
    return seen


async def test_a_group_that_fails_is_split_and_its_failing_part_goes_on_alone() -> None:
    bus = await started_bus()
    alone = await published_alone(bus)
    consumer = GroupSplitter(bus)
    held = HeldGroup("a", "b", "bad", "c")
    await consumer._handle([held])
    assert consumer.handled == ["a", "b", "c"]
    await wait_until(lambda: alone == ["bad"])  # published again by itself, behind what is queued
    assert held.settled == "ack"  # once its part was published again, never before
    await bus.close()


async def test_a_group_lost_with_its_channel_while_split_comes_back_whole() -> None:
    bus = await started_bus()
    alone = await published_alone(bus)
    consumer = GroupSplitter(bus)
    held = HeldGroup("a", "bad", "c")
    consumer.lose_channel_of = held
    await consumer._handle([held])
    assert consumer.handled == ["a"]  # handled before the channel went
    # Nothing is published again, nothing settled: the broker has the group and delivers it
    # whole to whoever consumes next (the parts handled meanwhile are handled again then).
    assert held.settled is None
    await asyncio.sleep(0.05)
    assert alone == []
    await bus.close()
