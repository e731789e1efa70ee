"""The persistence service end to end on a real database, with the in-process bus and RabbitMQ.

An observer queue bound to what the worker publishes checks, as each event arrives, that the
message's row is already committed (it reads through a connection of its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from chase import routing
from chase.bus.port import Bus, Delivery, QueueSpec
from chase.clock import FakeClock
from chase.schemas import (
    HistoryQuery,
    MessagePage,
    MessageRejected,
    MessagesStored,
    MessageStored,
    MessageSubmitted,
    QueryFailed,
    SessionRevoked,
    SyncQuery,
    UserRef,
)
from chase.store import migrate
from chase.store.engine import create_engine
from chase.store.tables import messages
from services.persistence.main import PersistenceService
from services.persistence.settings import PersistenceSettings
from tests.helpers import make_users, wait_until
from tests.integration.system import delete_namespace

NOW = datetime(2026, 5, 6, 7, 8, 9, 654321, tzinfo=UTC)
OBSERVER = QueueSpec(
    "test.observer", bindings=("message.stored.#", "message.rejected.#", "user.*.message.resent"), durable=False
)


@dataclass
class Seen:
    routing_key: str
    event: MessageStored | MessageRejected
    row_committed: bool | None


@dataclass
class Stack:
    engine: object
    bus: Bus
    service: PersistenceService
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture(params=["memory-sqlite", "memory-mariadb", "rabbit-mariadb"])
async def stack(request: pytest.FixtureRequest, bus_namespace: str) -> AsyncIterator[Stack]:
    bus_kind, db_kind = request.param.split("-")
    engine = create_engine(request.getfixturevalue(f"{db_kind}_url"))
    await migrate.upgrade(engine)
    if bus_kind == "memory":
        from chase.bus.memory import MemoryBus

        bus: Bus = MemoryBus(bus_namespace)
    else:
        from chase.bus.factory import create_bus

        amqp_url = request.getfixturevalue("amqp_url")
        bus = create_bus(amqp_url, bus_namespace)
    await bus.start()
    settings = PersistenceSettings(max_body_chars=50, batch_wait_seconds=0.01)
    service = PersistenceService(settings, engine=engine, bus=bus, clock=FakeClock(NOW))
    stack = Stack(engine, bus, service)

    async def observe(delivery: Delivery) -> None:
        # A run of one batch on one key comes as one MessagesStored: seen one by one, as a
        # gateway handles it.
        events = delivery.event.items if isinstance(delivery.event, MessagesStored) else [delivery.event]
        for event in events:
            committed = None
            if isinstance(event, MessageStored):
                async with engine.connect() as conn:
                    found = await conn.execute(sa.select(messages.c.id).where(messages.c.id == event.message.id))
                    committed = found.first() is not None
            stack.seen.append(Seen(delivery.routing_key, event, committed))
        await delivery.ack()

    observer = await bus.consume(OBSERVER, observe)
    await service.start()
    try:
        yield stack
    finally:
        await service.stop()
        await observer.cancel()
        await bus.close()
        await engine.dispose()
        if bus_kind == "rabbit":
            await delete_namespace(request.getfixturevalue("amqp_url"), {f"{bus_namespace}.{OBSERVER.name}"}, bus_namespace)


async def submit(bus: Bus, sender: UserRef, cmid: str, body: str = "hello", to: int | None = None) -> None:
    event = MessageSubmitted(sender=sender, recipient_id=to, body=body, client_msg_id=cmid, submitted_at=NOW)
    await bus.publish(routing.MESSAGE_SUBMITTED, event)


async def count_rows(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar_one()


async def test_stored_events_are_published_after_commit(stack: Stack):
    alice, bob = await make_users(stack.engine, "alice", "bob", created_at=NOW)
    await submit(stack.bus, alice, "a1", "public hello")
    await submit(stack.bus, alice, "a2", "private hello", to=bob.id)
    await submit(stack.bus, bob, "b1", "שלום 😀 e\u0301")

    await wait_until(lambda: len(stack.seen) == 3)

    assert all(seen.row_committed for seen in stack.seen)
    by_cmid = {seen.event.message.client_msg_id: seen for seen in stack.seen}
    assert by_cmid["a1"].routing_key == routing.MESSAGE_STORED_PUBLIC
    assert by_cmid["a2"].routing_key == routing.message_stored(alice.id, bob.id)
    assert by_cmid["a2"].event.message.recipient_id == bob.id
    assert by_cmid["b1"].event.message.body == "שלום 😀 e\u0301"
    assert by_cmid["b1"].event.message.sender == bob
    ids = [seen.event.message.id for seen in stack.seen]
    assert ids == sorted(ids), "events are published in commit (id) order"
    assert [seen.event.message.client_msg_id for seen in stack.seen] == ["a1", "a2", "b1"]
    assert not any(seen.event.duplicate for seen in stack.seen)


async def test_resend_is_acknowledged_with_the_original(stack: Stack):
    (alice,) = await make_users(stack.engine, "alice", created_at=NOW)
    await submit(stack.bus, alice, "m1", "first")
    await wait_until(lambda: len(stack.seen) == 1)

    await submit(stack.bus, alice, "m1", "first")
    await wait_until(lambda: len(stack.seen) == 2)

    original, resend = stack.seen
    assert resend.event.duplicate and resend.event.resend and not original.event.duplicate
    assert resend.event.message == original.event.message
    # Only the sender hears of a resend; the message is not shown to anyone again.
    assert original.routing_key == routing.MESSAGE_STORED_PUBLIC
    assert resend.routing_key == routing.message_resent(alice.id)
    assert await count_rows(stack.engine) == 1


async def test_unknown_recipient_is_rejected_to_the_sender(stack: Stack):
    (alice,) = await make_users(stack.engine, "alice", created_at=NOW)
    await submit(stack.bus, alice, "x1", to=987_654)
    await submit(stack.bus, alice, "x2", "   ")
    await submit(stack.bus, alice, "ok")

    await wait_until(lambda: len(stack.seen) == 3)

    rejected = [seen for seen in stack.seen if isinstance(seen.event, MessageRejected)]
    assert [(s.routing_key, s.event.client_msg_id, s.event.code) for s in rejected] == [
        (routing.message_rejected(alice.id), "x1", "recipient_unknown"),
        (routing.message_rejected(alice.id), "x2", "body_empty"),
    ]
    assert await count_rows(stack.engine) == 1


async def test_foreign_event_on_the_queue_is_skipped(stack: Stack):
    (alice,) = await make_users(stack.engine, "alice", created_at=NOW)
    await stack.bus.publish(routing.MESSAGE_SUBMITTED, SessionRevoked(user_id=alice.id, session_id="s"))
    await submit(stack.bus, alice, "after")

    await wait_until(lambda: len(stack.seen) == 1)
    assert stack.seen[0].event.message.client_msg_id == "after"


async def test_history_and_sync_over_the_bus(stack: Stack):
    alice, bob, carol = await make_users(stack.engine, "alice", "bob", "carol", created_at=NOW)
    await submit(stack.bus, alice, "p1", "public")
    await submit(stack.bus, alice, "d1", "for bob only", to=bob.id)
    await submit(stack.bus, bob, "d2", "back to alice", to=alice.id)
    await wait_until(lambda: len(stack.seen) == 3)
    public_id, d1_id, d2_id = (seen.event.message.id for seen in stack.seen)

    bob_dm = await stack.bus.request(routing.HISTORY_RPC, HistoryQuery(viewer_id=bob.id, with_user_id=alice.id, before_id=None, limit=1))
    assert isinstance(bob_dm, MessagePage)
    assert [m.id for m in bob_dm.messages] == [d2_id] and bob_dm.has_more

    carol_dm = await stack.bus.request(routing.HISTORY_RPC, HistoryQuery(viewer_id=carol.id, with_user_id=alice.id, before_id=None, limit=50))
    assert carol_dm == MessagePage(messages=[], has_more=False)

    carol_sync = await stack.bus.request(routing.HISTORY_RPC, SyncQuery(viewer_id=carol.id, after_id=0, limit=50))
    assert [m.id for m in carol_sync.messages] == [public_id]

    bob_sync = await stack.bus.request(routing.HISTORY_RPC, SyncQuery(viewer_id=bob.id, after_id=public_id, limit=50))
    assert [m.id for m in bob_sync.messages] == [d1_id, d2_id] and not bob_sync.has_more

    wrong = await stack.bus.request(routing.HISTORY_RPC, SessionRevoked(user_id=1, session_id="s"))
    assert isinstance(wrong, QueryFailed) and wrong.code == "bad_query"


async def test_stop_then_restart_loses_nothing(stack: Stack):
    # Messages submitted while no worker runs wait in the durable queue and are stored later.
    (alice,) = await make_users(stack.engine, "alice", created_at=NOW)
    await stack.service.stop()
    for i in range(5):
        await submit(stack.bus, alice, f"w{i}", f"while stopped {i}")
    assert await count_rows(stack.engine) == 0

    await stack.service.start()
    await wait_until(lambda: len(stack.seen) == 5)
    assert await count_rows(stack.engine) == 5
    assert [seen.event.message.body for seen in stack.seen] == [f"while stopped {i}" for i in range(5)]


async def test_a_link_cut_under_the_store_is_an_outage_until_the_database_answers(mariadb_url: str):
    """A failure of the store is judged by whether the database answers right after (the
    worker's real probe, through the cut link): while the link is cut it is an outage, whatever
    the error says (the batch is retried whole, in order; the driver under uvloop can fail with
    its own ``RuntimeError`` for a link cut inside a transaction); once the database answers,
    a failure is the batch's own."""
    from chase.bus.memory import MemoryBus
    from services.persistence.store import MessageStore
    from services.persistence.worker import PersistenceWorker
    from tests.faults import TcpForwarder

    target = sa.engine.make_url(mariadb_url)
    setup = create_engine(mariadb_url)
    try:
        await migrate.upgrade(setup)
        (alice,) = await make_users(setup, "alice")
    finally:
        await setup.dispose()
    async with TcpForwarder(target.host or "127.0.0.1", target.port or 3306) as link:
        engine = create_engine(target.set(port=link.port).render_as_string(hide_password=False))
        bus = MemoryBus("cut")
        store = MessageStore(engine, FakeClock(NOW))
        worker = PersistenceWorker(bus, store, probe=store.probe)
        try:
            await store.probe()  # a pooled connection, open through the link
            await link.cut()
            batch = [MessageSubmitted(sender=alice, recipient_id=None, body="hi", client_msg_id="c1", submitted_at=NOW)]
            with pytest.raises(Exception) as failed:
                await store.store_batch(batch)
            assert await worker.is_outage(failed.value)
            await link.restore()
            assert not await worker.is_outage(ValueError("a value the database refuses"))
            [result] = await store.store_batch(batch)
            assert result.message.client_msg_id == "c1"  # type: ignore[union-attr]
        finally:
            await engine.dispose()
