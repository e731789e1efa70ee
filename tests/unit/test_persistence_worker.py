"""The worker's logic on the in-process bus with an in-memory store (no database)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from chase import routing
from chase.bus.memory import MemoryBus
from chase.bus.port import BusUnavailable, Delivery, QueueSpec
from chase.schemas import ChatMessage, MessageRejected, MessageStored, MessageSubmitted, SessionRevoked, UserRef
from services.persistence.errors import RejectCode
from services.persistence.store import Rejected, Stored, StoreResult
from services.persistence.worker import PersistenceWorker, outgoing
from tests.helpers import wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = UserRef(id=1, username="alice")


def submitted(cmid: str, to: int | None = None) -> MessageSubmitted:
    return MessageSubmitted(sender=ALICE, recipient_id=to, body="hi", client_msg_id=cmid, submitted_at=NOW)


class FakeStore:
    """Stores in a dict; can be told to fail the next calls."""

    def __init__(self, failures: Sequence[Exception] = ()) -> None:
        self.failures = list(failures)
        self.rows: dict[tuple[int, str], ChatMessage] = {}
        self.calls = 0

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


def test_duplicate_flag_travels_in_the_event():
    message = ChatMessage(id=5, sender=ALICE, recipient_id=3, body="x", created_at=NOW, client_msg_id="m")
    key, event = outgoing(Stored(message, duplicate=True))
    assert key == "message.stored.dm.1.3"
    assert event == MessageStored(message=message, duplicate=True)
