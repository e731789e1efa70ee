"""The worker's logic on the in-process bus with an in-memory store (no database)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from chase import routing
from chase.bus.memory import MemoryBus
from chase.bus.port import BusUnavailable, Delivery, QueueSpec
from chase.clock import FakeClock
from chase.schemas import (
    ChatMessage,
    Event,
    MessageRejected,
    MessagesStored,
    MessagesSubmitted,
    MessageStored,
    MessageSubmitted,
    SessionRevoked,
    StoreStatus,
    UserRef,
)
from services.persistence.errors import RejectCode
from services.persistence.store import Rejected, Stored, StoreResult
from services.persistence.worker import (
    PERSISTENCE_QUEUE_SPEC,
    PersistenceWorker,
    grouped,
    outage_reason,
    outgoing,
)
from tests.helpers import wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = UserRef(id=1, username="alice")


def submitted(cmid: str, to: int | None = None, sender: UserRef = ALICE) -> MessageSubmitted:
    return MessageSubmitted(sender=sender, recipient_id=to, body="hi", client_msg_id=cmid, submitted_at=NOW)


def group(*items: MessageSubmitted) -> MessagesSubmitted:
    return MessagesSubmitted(items=list(items))


class FakeStore:
    """Stores in a dict; can be told to fail the next calls."""

    def __init__(self, failures: Sequence[Exception] = (), *, probe_failure: Exception | None = None) -> None:
        self.failures = list(failures)
        self.probe_failure = probe_failure
        self.rows: dict[tuple[int, str], ChatMessage] = {}
        self.calls = 0

    async def probe(self) -> None:
        if self.probe_failure is not None:
            raise self.probe_failure

    async def store_batch(self, batch: Sequence[MessageSubmitted]) -> list[StoreResult]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        results: list[StoreResult] = []
        for item in batch:
            if item.recipient_id == 99:
                results.append(Rejected(item.sender.id, item.client_msg_id, RejectCode.RECIPIENT_UNKNOWN, "no"))
                continue
            key = (item.sender.id, item.client_msg_id)
            duplicate = key in self.rows
            if not duplicate:
                self.rows[key] = ChatMessage(
                    id=len(self.rows) + 1, sender=item.sender, recipient_id=item.recipient_id, body=item.body,
                    created_at=NOW, client_msg_id=item.client_msg_id,
                )
            results.append(Stored(self.rows[key], duplicate=duplicate))
        return results


def db_error(code: int) -> OperationalError:
    return OperationalError("INSERT ...", {}, Exception(code, "driver message"))


@pytest.fixture
async def bus():
    bus = MemoryBus("unit")
    await bus.start()
    yield bus
    await bus.close()


async def run_worker(bus, store, events) -> list[Delivery]:
    seen: list[Delivery] = []

    async def observe(delivery: Delivery) -> None:
        seen.append(delivery)
        await delivery.ack()

    await bus.consume(QueueSpec("obs", bindings=("message.#",), durable=False), observe)
    dead: list[Delivery] = []

    async def dead_letters(delivery: Delivery) -> None:
        dead.append(delivery)
        await delivery.ack()

    await bus.consume(QueueSpec("dead-letter"), dead_letters)
    worker = PersistenceWorker(bus, store, max_batch=10, max_wait=0.0, retry_delay=0.0)
    await worker.start()
    try:
        for event in events:
            await bus.publish(routing.MESSAGE_SUBMITTED, event)
        expected = sum(isinstance(e, MessageSubmitted) for e in events) + len(events)
        # The observer also sees the submissions themselves (bound to message.#).
        await wait_until(lambda: len(seen) >= expected)
    finally:
        await worker.stop()
    assert dead == []
    return [d for d in seen if d.routing_key != routing.MESSAGE_SUBMITTED]


def stored_event(cmid: str, mid: int, to: int | None = None) -> MessageStored:
    return MessageStored(message=ChatMessage(id=mid, sender=ALICE, recipient_id=to, body="hi", created_at=NOW,
                                             client_msg_id=cmid))


def test_runs_sharing_a_routing_key_are_published_as_one_event():
    public, dm = routing.MESSAGE_STORED_PUBLIC, routing.message_stored(1, 2)
    a, b, c, d, e = (stored_event(cmid, mid) for mid, cmid in enumerate("abcde", start=1))
    rejected = MessageRejected(sender_id=1, client_msg_id="x", code="recipient_unknown", reason="no")
    items = [(public, a), (public, b), (dm, c), (routing.message_rejected(1), rejected), (dm, d), (public, e)]
    assert grouped(items) == [
        (public, MessagesStored(items=[a, b])),
        (dm, c),  # a run of one stays as it is
        (routing.message_rejected(1), rejected),
        (dm, d),  # not merged with c: something else came between
        (public, e),
    ]
    assert grouped([]) == []


async def test_a_batch_of_the_public_room_is_one_event(bus):
    store = FakeStore()
    seen: list[Delivery] = []

    async def observe(delivery: Delivery) -> None:
        seen.append(delivery)
        await delivery.ack()

    await bus.consume(QueueSpec("obs", bindings=(routing.MESSAGE_STORED_PUBLIC,), durable=False), observe)
    # A full batch is stored at once: the long wait is never waited for.
    worker = PersistenceWorker(bus, store, max_batch=3, max_wait=30.0, retry_delay=0.0)
    await worker.start()
    try:
        for cmid in "abc":
            await bus.publish(routing.MESSAGE_SUBMITTED, submitted(cmid))
        await wait_until(lambda: len(seen) >= 1)
    finally:
        await worker.stop()
    [delivery] = seen
    assert isinstance(delivery.event, MessagesStored)
    assert [item.message.client_msg_id for item in delivery.event.items] == ["a", "b", "c"]
    assert [item.message.id for item in delivery.event.items] == [1, 2, 3]


async def test_results_are_published_to_their_routing_keys(bus):
    published = await run_worker(bus, FakeStore(), [submitted("a"), submitted("b", to=2), submitted("c", to=99)])
    assert [d.routing_key for d in published] == [
        routing.MESSAGE_STORED_PUBLIC, routing.message_stored(1, 2), routing.message_rejected(1)
    ]
    assert isinstance(published[2].event, MessageRejected) and published[2].event.code == "recipient_unknown"


async def test_database_outage_is_retried_not_dead_lettered(bus):
    store = FakeStore(failures=[db_error(2003), db_error(2013), db_error(2006), db_error(1213), db_error(2003)])
    published = await run_worker(bus, store, [submitted("a")])
    assert [d.event.message.client_msg_id for d in published] == ["a"]
    assert store.calls == 6


async def test_foreign_events_are_skipped(bus):
    store = FakeStore()
    published = await run_worker(bus, store, [SessionRevoked(user_id=1, session_id="s"), submitted("a")])
    assert [type(d.event) for d in published] == [MessageStored]
    assert store.calls == 1


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (BusUnavailable("no confirm"), True),
        (db_error(2003), True),
        (db_error(1205), True),
        (OperationalError("x", {}, Exception("database is locked")), True),
        (db_error(1366), False),  # incorrect string value: the statement's fault, not an outage
        (IntegrityError("x", {}, Exception(1062, "dup")), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_failures_are_told_apart(exc, transient):
    worker = PersistenceWorker(MemoryBus("unit"), FakeStore())
    assert worker.is_transient(exc) is transient


def test_a_redelivered_duplicate_goes_to_everyone_a_resend_only_to_its_sender():
    message = ChatMessage(id=5, sender=ALICE, recipient_id=3, body="x", created_at=NOW, client_msg_id="m")
    # Redelivered: the worker before may have died between COMMIT and publish.
    key, event = outgoing(Stored(message, duplicate=True), redelivered=True)
    assert key == "message.stored.dm.1.3"
    assert event == MessageStored(message=message, duplicate=True)
    # A fresh delivery of a stored message is a resend: the sender's ack only.
    key, event = outgoing(Stored(message, duplicate=True))
    assert key == "user.1.message.resent"
    assert event == MessageStored(message=message, duplicate=True, resend=True)
    assert outgoing(Stored(message))[0] == "message.stored.dm.1.3"


# --- announcing store outages ---------------------------------------------------------------


class SlowFailingStore(FakeStore):
    """Each call takes ``seconds`` of the fake clock, as a failing connect attempt would."""

    def __init__(self, clock: FakeClock, seconds: float, failures: Sequence[Exception]) -> None:
        super().__init__(failures)
        self.clock = clock
        self.seconds = seconds

    async def store_batch(self, batch: Sequence[MessageSubmitted]) -> list[StoreResult]:
        self.clock.advance(self.seconds)
        return await super().store_batch(batch)


class StatusDeafBus(MemoryBus):
    """An in-process bus that cannot publish StoreStatus while ``deaf``: the broker is down too,
    as far as the announcements are concerned."""

    deaf = True

    async def publish(self, routing_key: str, event: Event) -> None:
        if self.deaf and routing_key == routing.STORE_STATUS:
            raise BusUnavailable("no confirm")
        await super().publish(routing_key, event)


async def observe(bus: MemoryBus) -> list[Event]:
    """Every StoreStatus and MessageStored, in the order a gateway would get them."""
    seen: list[Event] = []

    async def record(delivery: Delivery) -> None:
        seen.append(delivery.event)
        await delivery.ack()

    spec = QueueSpec("gateway-like", bindings=(routing.STORE_STATUS, routing.MESSAGE_STORED_PUBLIC), durable=False)
    await bus.consume(spec, record)
    return seen


def statuses(seen: list[Event]) -> list[bool]:
    return [e.available for e in seen if isinstance(e, StoreStatus)]


def stored_ids(seen: list[Event]) -> list[str]:
    """The client ids of every stored message seen, in order (a run's MessagesStored unpacked)."""
    items = [i for e in seen for i in (e.items if isinstance(e, MessagesStored) else [e])]
    return [e.message.client_msg_id for e in items if isinstance(e, MessageStored)]


async def store_one(bus: MemoryBus, seen: list[Event], cmid: str) -> None:
    await bus.publish(routing.MESSAGE_SUBMITTED, submitted(cmid))
    await wait_until(lambda: cmid in stored_ids(seen))


def worker_for(bus: MemoryBus, store: FakeStore, clock: FakeClock | None = None, **kw: object) -> PersistenceWorker:
    return PersistenceWorker(
        bus, store, max_batch=10, max_wait=0.0, retry_delay=0.0, probe=store.probe, clock=clock or FakeClock(), **kw
    )


async def test_an_outage_is_announced_on_its_transitions_only(bus):
    seen = await observe(bus)
    store = FakeStore(failures=[db_error(2003), db_error(2013), db_error(2006), db_error(2003)])
    worker = worker_for(bus, store)
    await worker.start()
    try:
        await wait_until(lambda: statuses(seen) == [True])  # at start-up: the store answers
        await store_one(bus, seen, "a")
        for cmid in ("b", "c", "d"):  # steady state: nothing more
            await store_one(bus, seen, cmid)
    finally:
        await worker.stop()
    assert store.calls == 8
    assert statuses(seen) == [True, False, True]
    # "available" goes out before the first result, so the sender's next send is accepted.
    assert [type(e).__name__ for e in seen[:4]] == ["StoreStatus", "StoreStatus", "StoreStatus", "MessageStored"]
    down = next(e for e in seen if isinstance(e, StoreStatus) and not e.available)
    assert down.reason == "cannot connect to the database"


async def test_a_long_outage_is_re_announced_every_interval(bus):
    seen = await observe(bus)
    clock = FakeClock()
    # Attempts 2 s apart on the fake clock, all failing for 12 s: "down" at 2, 8 and 14.
    store = SlowFailingStore(clock, 2.0, [db_error(2003)] * 7)
    worker = worker_for(bus, store, clock, status_interval=5.0)
    await worker.start()
    try:
        await store_one(bus, seen, "a")
    finally:
        await worker.stop()
    assert statuses(seen) == [True, False, False, False, True]
    sent = [e.sent_at for e in seen if isinstance(e, StoreStatus)]
    assert [(t - sent[0]).total_seconds() for t in sent] == [0, 2, 8, 14, 16]


async def test_lock_conflicts_are_retried_without_announcing_an_outage(bus):
    seen = await observe(bus)
    worker = worker_for(bus, FakeStore(failures=[db_error(1213), db_error(1205)]))
    await worker.start()
    try:
        await store_one(bus, seen, "a")
    finally:
        await worker.stop()
    assert statuses(seen) == [True]


async def test_a_store_that_does_not_answer_at_start_up_is_announced_by_the_first_commit(bus):
    seen = await observe(bus)
    worker = worker_for(bus, FakeStore(probe_failure=db_error(2003)))
    await worker.start()  # does not fail: the worker waits for the database like any outage
    try:
        await store_one(bus, seen, "a")
        await store_one(bus, seen, "b")
    finally:
        await worker.stop()
    assert statuses(seen) == [True]


async def test_announcements_are_best_effort_when_the_broker_fails_them():
    bus = StatusDeafBus("unit")
    await bus.start()
    seen = await observe(bus)
    store = FakeStore(failures=[db_error(2003)] * 3)
    worker = worker_for(bus, store)
    await worker.start()
    try:
        await store_one(bus, seen, "a")  # stored all the same
        assert statuses(seen) == []
        bus.deaf = False
        await store_one(bus, seen, "b")  # the "available" nobody heard is sent with the next commit
        await store_one(bus, seen, "c")
    finally:
        await worker.stop()
        await bus.close()
    assert statuses(seen) == [True]
    assert stored_ids(seen) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (db_error(2003), "cannot connect to the database"),
        (db_error(2013), "lost the connection to the database"),
        (db_error(1040), "the database has too many connections"),
        (ConnectionResetError("reset by peer"), "lost the connection to the database"),
        (OperationalError("SELECT 1", {}, Exception(2003, "Can't connect to 'mysql://root:hunter2@db'")),
         "cannot connect to the database"),
        (db_error(1213), None),  # deadlock: retried, not an outage
        (db_error(1366), None),
        (OperationalError("x", {}, Exception("database is locked")), None),
        (BusUnavailable("no confirm"), None),  # the broker, not the store
        (ValueError("bug"), None),
    ],
)
def test_outage_reasons_are_fixed_texts(exc, reason):
    assert outage_reason(exc) == reason


class PoisonStore(FakeStore):
    """Fails, not as an outage, on any batch holding the client_msg_id "poison"."""

    def __init__(self) -> None:
        super().__init__()
        self.poison_attempts = 0

    async def store_batch(self, batch: Sequence[MessageSubmitted]) -> list[StoreResult]:
        if any(item.client_msg_id == "poison" for item in batch):
            if len(batch) == 1:
                self.poison_attempts += 1
            raise ValueError("a value the database refuses")
        return await super().store_batch(batch)


async def test_a_message_that_cannot_be_stored_is_rejected_to_its_sender_and_holds_up_nobody(bus):
    seen: list[Delivery] = []

    async def observe(delivery: Delivery) -> None:
        seen.append(delivery)
        await delivery.ack()

    await bus.consume(QueueSpec("obs", bindings=("message.stored.#", "message.rejected.#"), durable=False), observe)
    dead: list[str] = []

    async def dead_letters(delivery: Delivery) -> None:
        dead.append(delivery.event.client_msg_id)  # type: ignore[union-attr]
        await delivery.ack()

    await bus.consume(QueueSpec("dead-letter"), dead_letters)
    store = PoisonStore()
    worker = PersistenceWorker(bus, store, max_batch=10, max_wait=0.05, retry_delay=0.0)
    await worker.start()
    try:
        for cmid in ("a", "poison", "b"):
            await bus.publish(routing.MESSAGE_SUBMITTED, submitted(cmid))
        await wait_until(lambda: dead == ["poison"] and len(seen) == 3)
    finally:
        await worker.stop()
    events = {
        d.event.message.client_msg_id if isinstance(d.event, MessageStored) else d.event.client_msg_id: d.event
        for d in seen
    }
    assert isinstance(events["a"], MessageStored) and isinstance(events["b"], MessageStored)
    rejected = events["poison"]
    assert isinstance(rejected, MessageRejected) and rejected.code == RejectCode.REJECTED
    # Every attempt the queue's delivery limit allows, counted by the bus, then no more.
    assert store.poison_attempts == PERSISTENCE_QUEUE_SPEC.delivery_limit + 1


def test_while_another_lease_runs_the_worker_retries_when_it_runs_out():
    from datetime import timedelta

    from services.persistence.lease import LeaseHeld

    clock = FakeClock(NOW)
    worker = PersistenceWorker(MemoryBus("unit"), FakeStore(), clock=clock)
    held = LeaseHeld("other", (NOW + timedelta(seconds=2.5)).replace(tzinfo=None))
    assert worker.is_transient(held)
    assert worker.transient_pause(held, 1) == pytest.approx(2.51)
    assert worker.transient_pause(LeaseHeld("other", NOW.replace(tzinfo=None)), 1) == 0.05
    assert worker.transient_pause(ConnectionError(), 1) is None


class CutStore(FakeStore):
    """The database link is cut inside a transaction: the driver says so with its own error
    (not a MySQL code), and the database does not answer a probe until the link is back."""

    def __init__(self, down_for: int) -> None:
        super().__init__()
        self.down_for = down_for

    async def probe(self) -> None:
        if self.calls <= self.down_for:
            raise db_error(2003)

    async def store_batch(self, batch: Sequence[MessageSubmitted]) -> list[StoreResult]:
        if self.calls < self.down_for:
            self.calls += 1
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")
        return await super().store_batch(batch)


async def test_a_link_cut_inside_a_batch_is_an_outage_and_keeps_the_senders_order(bus):
    seen = await observe(bus)

    async def ignore(delivery: Delivery) -> None:
        pass

    # The queue exists before the messages come, so they reach the worker as one batch.
    await (await bus.consume(PERSISTENCE_QUEUE_SPEC, ignore)).cancel()
    for cmid in ("a", "b", "c", "d"):
        await bus.publish(routing.MESSAGE_SUBMITTED, submitted(cmid))
    store = CutStore(down_for=3)
    worker = worker_for(bus, store)
    await worker.start()
    try:
        await wait_until(lambda: len(stored_ids(seen)) == 4)
    finally:
        await worker.stop()
    # Retried whole, not split: nothing went back to the queue behind the messages after it.
    assert stored_ids(seen) == ["a", "b", "c", "d"]
    assert [m.id for m in store.rows.values()] == [1, 2, 3, 4]


async def test_a_failure_the_database_answers_after_is_the_batchs_own(bus):
    store = FakeStore()
    worker = worker_for(bus, store)
    assert not await worker.is_outage(ValueError("a value the database refuses"))
    store.probe_failure = db_error(2003)
    assert await worker.is_outage(RuntimeError("the handler is closed"))


# --- groups of sends (one MessagesSubmitted per turn of a gateway's event loop) ---------------

BOB = UserRef(id=2, username="bob")
CAROL = UserRef(id=3, username="carol")


class RecordingStore(FakeStore):
    """Remembers the client ids of every batch it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    async def store_batch(self, batch: Sequence[MessageSubmitted]) -> list[StoreResult]:
        self.batches.append([item.client_msg_id for item in batch])
        return await super().store_batch(batch)


async def queued_before_the_worker(bus: MemoryBus, events: Sequence[Event]) -> None:
    """Publish ``events`` to the persistence queue before any worker consumes it."""

    async def ignore(delivery: Delivery) -> None:
        pass

    await (await bus.consume(PERSISTENCE_QUEUE_SPEC, ignore)).cancel()
    for event in events:
        await bus.publish(routing.MESSAGE_SUBMITTED, event)


async def test_a_group_is_stored_item_by_item_beside_single_sends(bus):
    seen = await observe(bus)
    store = RecordingStore()
    # A gateway of this version (groups) and one of the version before (single sends) at once.
    await queued_before_the_worker(bus, [group(submitted("a1"), submitted("b1", sender=BOB)), submitted("c1"),
                                         group(submitted("a2"), submitted("b2", sender=BOB))])
    # Five sends in all fill the batch: it is taken then, never after the long wait.
    worker = PersistenceWorker(bus, store, max_batch=5, max_wait=30.0, retry_delay=0.0)
    await worker.start()
    try:
        await wait_until(lambda: len(stored_ids(seen)) == 5)
    finally:
        await worker.stop()
    assert stored_ids(seen) == ["a1", "b1", "c1", "a2", "b2"]
    assert [m.id for m in store.rows.values()] == [1, 2, 3, 4, 5]
    assert store.batches == [["a1", "b1", "c1", "a2", "b2"]]


async def test_a_group_weighs_its_sends_against_the_batch_size(bus):
    store = RecordingStore()
    await queued_before_the_worker(bus, [group(submitted("a"), submitted("b")), group(submitted("c"), submitted("d")),
                                         submitted("e")])
    seen = await observe(bus)
    # Never waits out max_wait: each batch is taken once the sends pending reach max_batch.
    worker = PersistenceWorker(bus, store, max_batch=3, max_wait=30.0, retry_delay=0.0)
    await worker.start()
    try:
        await wait_until(lambda: len(stored_ids(seen)) == 5)
    finally:
        await worker.stop()
    # A group is never cut: the second would have made the first batch 4.
    assert store.batches == [["a", "b"], ["c", "d", "e"]]


async def test_a_group_with_a_poisoned_send_stores_the_others_and_isolates_that_one(bus):
    seen: list[Delivery] = []

    async def record(delivery: Delivery) -> None:
        seen.append(delivery)
        await delivery.ack()

    await bus.consume(QueueSpec("obs", bindings=("message.stored.#", "message.rejected.#"), durable=False), record)
    dead: list[Event] = []

    async def dead_letters(delivery: Delivery) -> None:
        dead.append(delivery.event)
        await delivery.ack()

    await bus.consume(QueueSpec("dead-letter"), dead_letters)
    store = PoisonStore()
    await queued_before_the_worker(bus, [
        group(submitted("a"), submitted("poison", sender=BOB), submitted("c", sender=CAROL)),
        submitted("d"),
    ])
    worker = PersistenceWorker(bus, store, max_batch=10, max_wait=0.0, retry_delay=0.0)
    await worker.start()
    try:
        await wait_until(lambda: len(dead) == 1 and len(seen) == 4)
    finally:
        await worker.stop()
    # The good ones of the group (and the send after it) are stored, each once.
    assert sorted((m.sender.id, m.client_msg_id) for m in store.rows.values()) == [(1, "a"), (1, "d"), (3, "c")]
    results = [d.event for d in seen]
    stored = [i.message.client_msg_id for e in results
              for i in (e.items if isinstance(e, MessagesStored) else [e]) if isinstance(i, MessageStored)]
    assert sorted(stored) == ["a", "c", "d"]
    # The poisoned one went on alone: published again as a single send, tried as often as the
    # queue allows any send, then rejected to its own sender and dead-lettered by itself.
    [rejected] = [e for e in results if isinstance(e, MessageRejected)]
    assert (rejected.sender_id, rejected.client_msg_id, rejected.code) == (BOB.id, "poison", RejectCode.REJECTED)
    assert dead == [submitted("poison", sender=BOB)]
    # Once alone inside its group, then every attempt of its own.
    assert store.poison_attempts == 1 + PERSISTENCE_QUEUE_SPEC.delivery_limit + 1


async def test_a_group_that_fails_on_its_last_attempt_tells_each_sender(bus):
    seen: list[Event] = []

    async def record(delivery: Delivery) -> None:
        seen.append(delivery.event)
        await delivery.ack()

    await bus.consume(QueueSpec("obs", bindings=("message.rejected.#",), durable=False), record)
    worker = PersistenceWorker(bus, FakeStore())
    delivery = _Held(group(submitted("a"), submitted("b", sender=BOB)))
    await worker.on_poison(delivery, ValueError("refused"))
    await wait_until(lambda: len(seen) == 2)
    assert [(e.sender_id, e.client_msg_id) for e in seen] == [(1, "a"), (2, "b")]  # type: ignore[union-attr]


class _Held(Delivery):
    """A delivery handed to a hook directly (no queue behind it)."""

    def __init__(self, event: Event) -> None:
        self.event = event
        self.routing_key = routing.MESSAGE_SUBMITTED
        self.redelivered = False

    async def ack(self) -> None:
        return None

    async def reject(self, *, requeue: bool) -> None:
        return None
