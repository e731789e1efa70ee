"""One contract, two adapters: every test here runs on the in-process bus and on real RabbitMQ.

Absence is proven without waiting for time to pass: a *fence* event, published last to a key
every test queue binds, arrives after everything published before it on the same queue, so
"what arrived before the fence" is everything that will ever arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chase.bus.consumer import BatchConsumer
from chase.bus.memory import MemoryBroker, MemoryBus
from chase.bus.port import Bus, BusUnavailable, Delivery, QueueSpec, RequestTimeout
from chase.schemas import Event, HistoryQuery, MessagePage, QueryFailed, SessionRevoked, encode
from tests.helpers import unused_port, wait_until

FENCE = "fence"


def ev(tag: str) -> SessionRevoked:
    return SessionRevoked(user_id=1, session_id=tag)


def tags(events: list[Event]) -> list[str]:
    return [e.session_id for e in events]  # type: ignore[union-attr]


class Inbox:
    """A handler that records deliveries, acking them unless told to hold them."""

    def __init__(self, *, ack: bool = True) -> None:
        self.auto_ack = ack
        self.deliveries: list[Delivery] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if self.auto_ack:
            await delivery.ack()

    @property
    def tags(self) -> list[str]:
        return tags([d.event for d in self.deliveries])

    async def until(self, tag: str) -> list[str]:
        """Wait for ``tag``; return what arrived before it."""
        await wait_until(lambda: tag in self.tags)
        return self.tags[: self.tags.index(tag)]


async def fence(bus: Bus, *inboxes: Inbox) -> list[list[str]]:
    await bus.publish(FENCE, ev(FENCE))
    return [await inbox.until(FENCE) for inbox in inboxes]


class MemoryAdapter:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.broker = MemoryBroker()

    def make_bus(self) -> Bus:
        return MemoryBus(self.namespace, broker=self.broker)

    def unreachable_bus(self) -> Bus:
        return MemoryBus(self.namespace, broker=self.broker)  # never started

    async def publish_raw(self, bus: Bus, routing_key: str, body: bytes) -> None:
        assert isinstance(bus, MemoryBus)
        await bus.publish_raw(routing_key, body)

    async def cleanup(self) -> None:
        pass


class RabbitAdapter:
    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self.buses: list[Bus] = []

    def make_bus(self) -> Bus:
        from chase.bus.rabbitmq import RabbitBus

        bus = RabbitBus(self.url, self.namespace)
        self.buses.append(bus)
        return bus

    def unreachable_bus(self) -> Bus:
        from chase.bus.rabbitmq import RabbitBus

        return RabbitBus(f"amqp://guest:s3cret-pw@127.0.0.1:{unused_port()}/", self.namespace, connect_timeout=2)

    async def publish_raw(self, bus: Bus, routing_key: str, body: bytes) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(f"{self.namespace}.events")
            await exchange.publish(aio_pika.Message(body, content_type="application/json"), routing_key)

    async def cleanup(self) -> None:
        import aio_pika

        names = {f"{self.namespace}.dead-letter"}
        for bus in self.buses:
            await bus.close()
            names |= bus.declared_queues  # type: ignore[attr-defined]
        connection = await aio_pika.connect(self.url)
        async with connection:
            for name in names:
                channel = await connection.channel()
                await channel.queue_delete(name)
                await channel.close()
            channel = await connection.channel()
            for exchange in (f"{self.namespace}.events", f"{self.namespace}.dead-letter"):
                await channel.exchange_delete(exchange)


@pytest.fixture(params=["memory", "rabbitmq"])
async def adapter(request: pytest.FixtureRequest, bus_namespace: str) -> AsyncIterator[object]:
    if request.param == "memory":
        made: MemoryAdapter | RabbitAdapter = MemoryAdapter(bus_namespace)
    else:
        made = RabbitAdapter(request.getfixturevalue("amqp_url"), bus_namespace)
    try:
        yield made
    finally:
        await made.cleanup()


@pytest.fixture
async def bus(adapter: MemoryAdapter) -> AsyncIterator[Bus]:
    made = adapter.make_bus()
    await made.start()
    try:
        yield made
    finally:
        await made.close()


def spec(name: str, *bindings: str, **options: object) -> QueueSpec:
    return QueueSpec(name, bindings=(*bindings, FENCE), **options)  # type: ignore[arg-type]


# --- routing --------------------------------------------------------------------------------


async def test_star_and_hash_routing(bus: Bus) -> None:
    dm = Inbox()
    user = Inbox()
    everything = Inbox()
    await bus.consume(spec("dm", "message.stored.dm.1.*"), dm)
    await bus.consume(spec("user", "user.7.#"), user)
    await bus.consume(spec("all", "#"), everything)
    keys = ["message.stored.dm.1.2", "message.stored.dm.2.1", "message.stored.dm.1.2.3", "user.7",
            "user.7.session.revoked", "user.17.session.revoked", "message.stored.public"]
    for key in keys:
        await bus.publish(key, ev(key))
    got_dm, got_user, got_all = await fence(bus, dm, user, everything)
    assert got_dm == ["message.stored.dm.1.2"]
    assert got_user == ["user.7", "user.7.session.revoked"]
    assert got_all == keys
    assert [d.routing_key for d in dm.deliveries] == ["message.stored.dm.1.2", FENCE]


async def test_publish_many_keeps_publish_order_and_returns_once_all_are_confirmed(bus: Bus) -> None:
    inbox = Inbox()
    await bus.consume(spec("ordered", "batch.#"), inbox)
    sent = [f"m{i}" for i in range(300)]
    await bus.publish_many([(f"batch.{i % 3}", ev(tag)) for i, tag in enumerate(sent)])
    [got] = await fence(bus, inbox)
    assert got == sent


async def test_one_copy_per_queue_however_many_bindings_match(bus: Bus) -> None:
    inbox = Inbox()
    other = Inbox()
    await bus.consume(spec("overlap", "a.*", "a.#", "#.b", "a.b", "#"), inbox)
    await bus.consume(spec("other", "a.b"), other)
    await bus.publish("a.b", ev("one"))
    got, got_other = await fence(bus, inbox, other)
    assert got == ["one"]
    assert got_other == ["one"]


async def test_bind_and_unbind_at_runtime(bus: Bus) -> None:
    inbox = Inbox()
    await bus.consume(spec("runtime"), inbox)
    await bus.publish("x.1", ev("before-bind"))
    await bus.bind("runtime", "x.*")
    await bus.publish("x.2", ev("bound"))
    await bus.unbind("runtime", "x.*")
    await bus.publish("x.3", ev("after-unbind"))
    assert (await fence(bus, inbox)) == [["bound"]]


async def test_unroutable_event_is_dropped_silently(bus: Bus) -> None:
    await bus.publish("nobody.listens", ev("lost"))


# --- acknowledgement, prefetch, cancel ------------------------------------------------------


async def test_reject_with_requeue_redelivers_and_ack_does_not(bus: Bus) -> None:
    seen: list[Delivery] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery)
        if delivery.event == ev("once") and not delivery.redelivered:
            await delivery.reject(requeue=True)
        else:
            await delivery.ack()

    await bus.consume(spec("requeue", "r.#"), handler)
    await bus.publish("r.1", ev("once"))
    await wait_until(lambda: len([d for d in seen if d.event == ev("once")]) == 2)
    await bus.publish(FENCE, ev(FENCE))
    await wait_until(lambda: seen[-1].event == ev(FENCE))
    assert [(tags([d.event])[0], d.redelivered) for d in seen] == [("once", False), ("once", True), (FENCE, False)]


async def test_handler_exception_requeues(bus: Bus) -> None:
    seen: list[Delivery] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery)
        if not delivery.redelivered:
            raise RuntimeError("first try fails")
        await delivery.ack()

    await bus.consume(spec("raises", "boom"), handler)
    await bus.publish("boom", ev("boom"))
    await wait_until(lambda: len(seen) == 2)
    assert [d.redelivered for d in seen] == [False, True]


async def test_cancel_returns_unacked_deliveries(bus: Bus) -> None:
    held = Inbox(ack=False)
    subscription = await bus.consume(spec("cancel", "c.#"), held)
    for i in range(3):
        await bus.publish(f"c.{i}", ev(f"c{i}"))
    await wait_until(lambda: len(held.deliveries) == 3)
    await held.deliveries[0].ack()
    await subscription.cancel()
    again = Inbox()
    await bus.consume(spec("cancel", "c.#"), again)
    got = (await fence(bus, again))[0]
    assert sorted(got) == ["c1", "c2"]
    assert all(d.redelivered for d in again.deliveries[:2])


async def test_ack_all_acks_a_run_and_only_it(bus: Bus) -> None:
    held = Inbox(ack=False)
    subscription = await bus.consume(spec("ackall", "a.#"), held)
    for i in range(6):
        await bus.publish(f"a.{i}", ev(f"a{i}"))
    await wait_until(lambda: len(held.deliveries) == 6)
    first, second, third, *rest = held.deliveries
    await bus.ack_all([first, second])  # the oldest ones: one ack (multiple) may cover them
    await third.reject(requeue=True)
    # a3 is still held: acking a4 and a5 must not settle it with them.
    await bus.ack_all(rest[1:])
    await subscription.cancel()
    again = Inbox()
    await bus.consume(spec("ackall", "a.#"), again)
    got = (await fence(bus, again))[0]
    assert sorted(got) == ["a2", "a3"]


async def test_prefetch_limits_unacked_deliveries(bus: Bus) -> None:
    held = Inbox(ack=False)
    await bus.consume(spec("prefetch", "p.#"), held, prefetch=2)
    for i in range(5):
        await bus.publish(f"p.{i}", ev(f"p{i}"))
    await wait_until(lambda: len(held.deliveries) == 2)
    # A second consumer gets the other three: no event is given twice, so the first one
    # holding exactly two is proven, without waiting for time to pass.
    rest = Inbox()
    await bus.consume(spec("prefetch", "p.#"), rest)
    await wait_until(lambda: len(rest.deliveries) == 3)
    assert len(held.deliveries) == 2
    assert sorted(held.tags + rest.tags) == [f"p{i}" for i in range(5)]


async def test_single_active_consumer_fails_over(bus: Bus) -> None:
    queue = spec("sac", "s.#", single_active_consumer=True)
    first = Inbox(ack=False)
    second = Inbox()
    first_sub = await bus.consume(queue, first)
    await bus.consume(queue, second)
    for i in range(3):
        await bus.publish(f"s.{i}", ev(f"s{i}"))
    await wait_until(lambda: len(first.deliveries) == 3)
    assert second.deliveries == []
    await first_sub.cancel()
    await bus.publish("s.3", ev("s3"))
    got = (await fence(bus, second))[0]
    assert sorted(got) == ["s0", "s1", "s2", "s3"]
    assert got[-1] == "s3"


async def test_exclusive_queue_is_gone_after_close(adapter: MemoryAdapter) -> None:
    queue = spec("gateway.gw1", "e.#", durable=False, exclusive=True)
    first_bus = adapter.make_bus()
    await first_bus.start()
    held = Inbox(ack=False)
    await first_bus.consume(queue, held)
    await first_bus.publish("e.1", ev("old"))
    await wait_until(lambda: len(held.deliveries) == 1)
    await first_bus.close()

    second_bus = adapter.make_bus()
    await second_bus.start()
    try:
        fresh = Inbox()
        await second_bus.consume(queue, fresh)
        await second_bus.publish("e.2", ev("new"))
        assert (await fence(second_bus, fresh)) == [["new"]]
    finally:
        await second_bus.close()


async def test_max_length_drops_the_oldest(bus: Bus) -> None:
    held = Inbox(ack=False)
    await bus.consume(spec("bounded", "m.#", durable=False, exclusive=True, max_length=3), held, prefetch=1)
    for i in range(1, 7):
        await bus.publish(f"m.{i}", ev(f"m{i}"))
    for count in range(1, 5):
        await wait_until(lambda count=count: len(held.deliveries) == count)
        await held.deliveries[-1].ack()
    assert held.tags == ["m1", "m4", "m5", "m6"]
    held.auto_ack = True
    assert (await fence(bus, held))[0] == ["m1", "m4", "m5", "m6"]


async def test_max_length_bytes_drops_the_oldest(bus: Bus) -> None:
    held = Inbox(ack=False)
    size = len(encode(ev("m1")).encode())
    queue = spec("bounded-bytes", "m.#", durable=False, exclusive=True, max_length_bytes=3 * size)
    await bus.consume(queue, held, prefetch=1)
    for i in range(1, 7):
        await bus.publish(f"m.{i}", ev(f"m{i}"))
    for count in range(1, 5):
        await wait_until(lambda count=count: len(held.deliveries) == count)
        await held.deliveries[-1].ack()
    assert held.tags == ["m1", "m4", "m5", "m6"]
    held.auto_ack = True
    assert (await fence(bus, held))[0] == ["m1", "m4", "m5", "m6"]


# --- request / reply ------------------------------------------------------------------------


async def test_request_reply_round_trip(adapter: MemoryAdapter, bus: Bus) -> None:
    async def responder(event: Event) -> Event:
        assert isinstance(event, HistoryQuery)
        if event.viewer_id == 13:
            return QueryFailed(code="unlucky", reason="viewer 13")
        return MessagePage(messages=[], has_more=event.viewer_id % 2 == 0)

    await bus.serve(QueueSpec("history", bindings=("rpc.history",)), responder)
    client = adapter.make_bus()
    await client.start()
    try:
        queries = [HistoryQuery(viewer_id=v, with_user_id=None, before_id=None, limit=10) for v in (1, 2, 13, 4)]
        replies = await asyncio.gather(*(client.request("rpc.history", q) for q in queries))
    finally:
        await client.close()
    assert replies == [
        MessagePage(messages=[], has_more=False),
        MessagePage(messages=[], has_more=True),
        QueryFailed(code="unlucky", reason="viewer 13"),
        MessagePage(messages=[], has_more=True),
    ]


async def test_request_without_responder_times_out(bus: Bus) -> None:
    with pytest.raises(RequestTimeout):
        await bus.request("rpc.nobody", HistoryQuery(viewer_id=1, with_user_id=None, before_id=None, limit=1),
                          timeout=1.0)


async def test_request_to_silent_responder_times_out(bus: Bus) -> None:
    release = asyncio.Event()

    async def silent(event: Event) -> Event:
        await release.wait()
        return MessagePage(messages=[], has_more=False)

    await bus.serve(QueueSpec("silent", bindings=("rpc.silent",), durable=False), silent)
    try:
        with pytest.raises(RequestTimeout):
            await bus.request("rpc.silent", HistoryQuery(viewer_id=1, with_user_id=None, before_id=None, limit=1),
                              timeout=0.3)
    finally:
        release.set()


# --- bad input and outages ------------------------------------------------------------------


async def test_malformed_body_never_crashes_the_consumer(adapter: MemoryAdapter, bus: Bus) -> None:
    inbox = Inbox()
    await bus.consume(spec("malformed", "bad.#"), inbox)
    await adapter.publish_raw(bus, "bad.1", b"not json at all")
    await adapter.publish_raw(bus, "bad.2", b'{"type": "no.such.event"}')
    await adapter.publish_raw(bus, "bad.3", b'{"type": "session.revoked", "user_id": 0, "session_id": "x"}')
    await bus.publish("bad.4", ev("fine"))
    assert (await fence(bus, inbox)) == [["fine"]]


async def test_publish_on_a_closed_bus_raises(bus: Bus) -> None:
    await bus.close()
    with pytest.raises(BusUnavailable):
        await bus.publish("x", ev("x"))
    await bus.close()  # idempotent


async def test_unreachable_bus_raises_bus_unavailable(adapter: MemoryAdapter) -> None:
    unreachable = adapter.unreachable_bus()
    if isinstance(adapter, RabbitAdapter):
        with pytest.raises(BusUnavailable) as failure:
            await unreachable.start()
        assert "CHASE_AMQP_URL" in str(failure.value)
        assert "s3cret-pw" not in str(failure.value)
    with pytest.raises(BusUnavailable):
        await unreachable.publish("x", ev("x"))
    with pytest.raises(BusUnavailable):
        await unreachable.publish_many([("x", ev("x")), ("y", ev("y"))])
    await unreachable.close()


# --- the consumer base class ----------------------------------------------------------------


class Recorder(BatchConsumer):
    def __init__(self, bus: Bus, queue: QueueSpec, poison: set[str] | None = None, **options: float) -> None:
        super().__init__(bus, queue, **options)  # type: ignore[arg-type]
        self.poison = poison or set()
        self.batches: list[list[str]] = []

    async def consume_batch(self, events: list[Event]) -> None:
        batch = tags(events)
        if self.poison & set(batch):
            raise ValueError("poison in batch")
        self.batches.append(batch)

    @property
    def handled(self) -> list[str]:
        return [tag for batch in self.batches for tag in batch]


async def test_batch_consumer_batches_a_burst_in_order(bus: Bus) -> None:
    queue = spec("work", "work.#")
    # Declare the queue, so that the whole burst waits in it before the consumer starts.
    await (await bus.consume(queue, Inbox(ack=False))).cancel()
    expected = [f"w{i:02}" for i in range(60)]
    for tag in expected:
        await bus.publish("work.item", ev(tag))
    consumer = Recorder(bus, queue, max_batch=20, max_wait=0.5)
    await consumer.start()
    try:
        await wait_until(lambda: len(consumer.handled) == len(expected))
    finally:
        await consumer.stop()
    assert consumer.handled == expected
    assert len(consumer.batches) < len(expected)
    assert all(len(batch) <= 20 for batch in consumer.batches)
    # Everything the batch consumer handled was acked: a new consumer sees none of it again.
    after = Inbox()
    await bus.consume(queue, after)
    got = (await fence(bus, after))[0]
    assert not set(got) & set(consumer.handled)


async def test_batch_consumer_isolates_and_dead_letters_poison(bus: Bus) -> None:
    dead = Inbox()
    await bus.consume(QueueSpec("dead-letter"), dead)
    queue = spec("poisoned", "job.#", delivery_limit=2)
    consumer = Recorder(bus, queue, poison={"j04"}, max_batch=10, max_wait=0.5, retry_delay=0)
    await consumer.start()
    try:
        expected = [f"j{i:02}" for i in range(10)]
        for tag in expected:
            await bus.publish("job.item", ev(tag))
        await wait_until(lambda: "j04" in dead.tags)
        await wait_until(lambda: len(consumer.handled) == 9)
    finally:
        await consumer.stop()
    assert consumer.handled == [t for t in expected if t != "j04"]
    assert dead.tags == ["j04"]
    assert dead.deliveries[0].routing_key == "job.item"


async def test_the_broker_counts_returns_and_dead_letters_past_the_delivery_limit(bus: Bus) -> None:
    dead = Inbox()
    await bus.consume(QueueSpec("dead-letter"), dead)
    counts: list[int] = []

    async def always_return(delivery: Delivery) -> None:
        counts.append(delivery.delivery_count)
        await delivery.reject(requeue=True)

    await bus.consume(spec("limited", "limited.#", delivery_limit=2), always_return)
    await bus.publish("limited.x", ev("doomed"))
    await wait_until(lambda: dead.tags == ["doomed"])
    # Three attempts: the first, then two returns the limit allows; the count is the broker's.
    assert counts == [0, 1, 2]


async def test_a_request_nobody_waits_for_any_more_is_not_answered(bus: Bus) -> None:
    """A request expires with its requester's wait: a responder that was busy meanwhile is
    not handed the ones already given up on (in a storm, answering them made the rest late)."""
    release = asyncio.Event()
    asked: list[int] = []

    async def busy(event: Event) -> Event:
        assert isinstance(event, HistoryQuery)
        asked.append(event.viewer_id)
        if event.viewer_id == 1:
            await release.wait()
        return MessagePage(messages=[], has_more=False)

    def query(viewer: int) -> HistoryQuery:
        return HistoryQuery(viewer_id=viewer, with_user_id=None, before_id=None, limit=1)

    # One request at a time: the second waits in the queue behind the first.
    await bus.serve(QueueSpec("busy", bindings=("rpc.busy",), durable=False), busy, prefetch=1)
    first = asyncio.ensure_future(bus.request("rpc.busy", query(1), timeout=30))
    await wait_until(lambda: asked == [1])
    with pytest.raises(RequestTimeout):
        await bus.request("rpc.busy", query(2), timeout=0.3)
    release.set()
    assert await first == MessagePage(messages=[], has_more=False)
    assert await bus.request("rpc.busy", query(3), timeout=10) == MessagePage(messages=[], has_more=False)
    assert asked == [1, 3]
