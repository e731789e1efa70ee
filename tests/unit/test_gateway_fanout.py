"""Fan-out and outboxes on the in-process bus, with in-memory frame sinks (no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from chase import routing
from chase.bus.memory import MemoryBus
from chase.clock import FakeClock
from chase.schemas import (
    ChatMessage,
    Limits,
    MessagesStored,
    MessageStored,
    PongFrame,
    PresenceChanged,
    RoomEvent,
    RoomInfo,
    RoomList,
    SessionRevoked,
    StoreStatus,
    UserRef,
    decode_server_frame,
)
from services.gateway.fanout import Connection, FanOut
from services.gateway.presence import PresenceTracker
from services.gateway.server import bearer_token
from services.gateway.session import ConnectionSession
from tests.helpers import wait_until

ALICE = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")
CAROL = UserRef(id=3, username="carol")
LIMITS = Limits(max_body_chars=100, max_frame_bytes=1000, rate_per_second=10, rate_burst=10)


class ListSink:
    """Frames written to a list; ``stuck`` keeps them unsent, like a client that stopped reading
    (its socket's buffer only grows)."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.frames: list = []
        self.closed: tuple[int, str] | None = None
        self.stuck = stuck
        self.unsent: list[bytes] = []

    def write(self, frames: list[bytes]) -> None:
        if self.stuck:
            self.unsent += frames
        else:
            self.frames += [decode_server_frame(data) for data in frames]

    def backlog(self) -> int:
        return sum(len(data) for data in self.unsent)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def bodies(self) -> list[str]:
        return [f.message.body for f in self.frames if f.type == "message"]


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus("unit")
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def fanout(bus: MemoryBus) -> AsyncIterator[FanOut]:
    fanout = FanOut(bus, PresenceTracker("gw-1", FakeClock(), ttl_seconds=15))
    await fanout.start()
    yield fanout
    for conn in fanout.connections():
        await fanout.remove(conn)
        await conn.finish()
    await fanout.stop()


async def connect(
    fanout: FanOut, user: UserRef, session_id: str = "s", *, stuck: bool = False, outbox_size: int = 50
) -> tuple[Connection, ListSink]:
    sink = ListSink(stuck=stuck)
    session = ConnectionSession(user, f"{session_id}-{user.id}", LIMITS, FakeClock(), store=fanout.store,
                                rooms=fanout.rooms)
    conn = Connection(session, sink, outbox_size=outbox_size)
    conn.start()
    await fanout.add(conn)
    return conn, sink


def stored(sender: UserRef, body: str, recipient: int | None = None, mid: int = 1) -> MessageStored:
    message = ChatMessage(id=mid, sender=sender, recipient_id=recipient, body=body,
                          created_at=datetime(2026, 1, 1, tzinfo=UTC), client_msg_id=f"c{mid}")
    return MessageStored(message=message)


async def test_private_message_reaches_only_its_participants_devices(bus: MemoryBus, fanout: FanOut) -> None:
    (_, alice1), (_, alice2), (_, bob), (_, carol) = [
        await connect(fanout, u, session_id=s) for u, s in ((ALICE, "a"), (ALICE, "b"), (BOB, "a"), (CAROL, "a"))
    ]
    dm = stored(ALICE, "secret", recipient=BOB.id, mid=1)
    await bus.publish(routing.message_stored(ALICE.id, BOB.id), dm)
    marker = stored(BOB, "public marker", mid=2)
    await bus.publish(routing.MESSAGE_STORED_PUBLIC, marker)
    await wait_until(lambda: all("public marker" in s.bodies() for s in (alice1, alice2, bob, carol)))
    for sink in (alice1, alice2, bob):
        assert sink.bodies() == ["secret", "public marker"]
    assert carol.bodies() == ["public marker"]
    assert carol.frames[0].type == "hello"


async def test_a_run_of_stored_messages_in_one_event_is_handled_as_if_one_by_one(
    bus: MemoryBus, fanout: FanOut
) -> None:
    alice_conn, alice = await connect(fanout, ALICE)
    _, carol = await connect(fanout, CAROL)
    for mid in (1, 2):
        alice_conn.session.receive_text(json.dumps({"type": "send", "client_msg_id": f"c{mid}", "body": f"m{mid}"}))
    assert alice_conn.session.pending == {"c1", "c2"}
    run = MessagesStored(items=[stored(ALICE, "m1", mid=1), stored(ALICE, "m2", mid=2)])
    await bus.publish(routing.MESSAGE_STORED_PUBLIC, run)
    await wait_until(lambda: carol.bodies() == ["m1", "m2"] and alice.bodies() == ["m1", "m2"])
    acks = [f.client_msg_id for f in alice.frames if f.type == "ack"]
    assert acks == ["c1", "c2"]
    assert alice_conn.session.pending == frozenset()
    assert not any(f.type == "ack" for f in carol.frames)


async def test_user_bindings_follow_first_and_last_connection(bus: MemoryBus, fanout: FanOut) -> None:
    queue = bus.broker.queues[f"unit.{fanout.queue_name}"]
    first, _ = await connect(fanout, BOB, session_id="a")
    second, _ = await connect(fanout, BOB, session_id="b")
    assert set(routing.user_bindings(BOB.id)) <= set(queue.bindings)
    await fanout.remove(first)
    assert set(routing.user_bindings(BOB.id)) <= set(queue.bindings)
    await fanout.remove(second)
    assert not set(routing.user_bindings(BOB.id)) & set(queue.bindings)
    assert set(routing.GATEWAY_STATIC_BINDINGS) <= set(queue.bindings)
    for conn in (first, second):
        await conn.finish()


async def test_presence_is_published_and_shown(bus: MemoryBus, fanout: FanOut) -> None:
    _, alice = await connect(fanout, ALICE)
    assert alice.frames == [] or alice.frames[0].type == "hello"
    await bus.publish(routing.presence("gw-2"), PresenceChanged(gateway_id="gw-2", user=BOB, online=True))
    await wait_until(lambda: any(f.type == "presence" and BOB in f.online for f in alice.frames))
    assert fanout.presence.online_user_ids() == {ALICE.id, BOB.id}


async def test_a_client_that_stops_reading_is_dropped_alone(bus: MemoryBus, fanout: FanOut) -> None:
    _, fast = await connect(fanout, CAROL)
    slow_conn, slow = await connect(fanout, BOB, stuck=True, outbox_size=5)
    for i in range(1, 8):
        await bus.publish(routing.MESSAGE_STORED_PUBLIC, stored(ALICE, f"m{i}", mid=i))
    await wait_until(lambda: fast.bodies() == [f"m{i}" for i in range(1, 8)])
    await wait_until(lambda: slow.closed is not None)
    assert slow.closed == (4008, "too slow: outbox overflowed")
    assert slow_conn.closing and fast.closed is None


async def test_revoked_session_is_closed_and_others_are_not(bus: MemoryBus, fanout: FanOut) -> None:
    _, first = await connect(fanout, ALICE, session_id="one")
    _, second = await connect(fanout, ALICE, session_id="two")
    await bus.publish(routing.session_revoked(ALICE.id), SessionRevoked(user_id=ALICE.id, session_id="one-1"))
    await wait_until(lambda: first.closed is not None)
    assert first.closed == (4401, "session revoked")
    second_conn = next(c for c in fanout.connections() if c.session.session_id == "two-1")
    second_conn.deliver(PongFrame())
    await second_conn.drained()
    assert second.closed is None and second.frames[-1] == PongFrame()


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), ("", None), (None, None)],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_store_status_from_the_worker_switches_sends_for_every_connection(
    bus: MemoryBus, fanout: FanOut
) -> None:
    (alice, alice_sink), (bob, _) = await connect(fanout, ALICE), await connect(fanout, BOB)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    await bus.publish(routing.STORE_STATUS, StoreStatus(available=False, reason="down", sent_at=when))
    await wait_until(lambda: not fanout.store.available)
    for conn in (alice, bob):
        [refused] = conn.session.receive_text('{"type": "send", "client_msg_id": "c1", "body": "hi"}')
        assert refused.frame.code == "unavailable"
    assert not any(f.type == "error" for f in alice_sink.frames)  # nothing is sent to clients by itself
    await bus.publish(routing.STORE_STATUS, StoreStatus(available=True, reason="up", sent_at=when))
    await wait_until(lambda: fanout.store.available)
    [accepted] = alice.session.receive_text('{"type": "send", "client_msg_id": "c1", "body": "hi"}')
    assert accepted.routing_key == routing.MESSAGE_SUBMITTED


class SlowBindBus(MemoryBus):
    """An in-process bus whose bindings for one user hang until released (a slow broker)."""

    def __init__(self, slow_user: int) -> None:
        super().__init__("unit-slow")
        self.slow_user = slow_user
        self.release = asyncio.Event()

    async def bind(self, queue_name: str, binding: str) -> None:
        if f".{self.slow_user}." in f".{binding}.":
            await self.release.wait()
        await super().bind(queue_name, binding)


async def test_one_users_slow_bindings_do_not_hold_up_another_user() -> None:
    bus = SlowBindBus(slow_user=ALICE.id)
    await bus.start()
    fanout = FanOut(bus, PresenceTracker("gw-1", FakeClock(), ttl_seconds=15))
    await fanout.start()
    try:
        alice = asyncio.create_task(connect(fanout, ALICE))
        bob_conn, bob_sink = await asyncio.wait_for(connect(fanout, BOB), 5)  # not queued behind alice
        await wait_until(lambda: any(f.type == "hello" for f in bob_sink.frames))
        assert not alice.done()
        bus.release.set()
        alice_conn, _ = await asyncio.wait_for(alice, 5)
        for conn in (alice_conn, bob_conn):
            await fanout.remove(conn)
            await conn.finish()
    finally:
        await fanout.stop()
        await bus.close()


class CountingBus(MemoryBus):
    """An in-process bus that records every binding made."""

    def __init__(self) -> None:
        super().__init__("unit-count")
        self.binds: list[str] = []

    async def bind(self, queue_name: str, binding: str) -> None:
        self.binds.append(binding)
        await super().bind(queue_name, binding)


async def test_a_binding_outlives_the_last_connection_for_the_grace_period() -> None:
    """A user back within ``unbind_after`` costs the broker nothing; one who stays away is
    unbound once it has passed."""
    bus = CountingBus()
    await bus.start()
    try:
        keeping = FanOut(bus, PresenceTracker("gw-1", FakeClock(), ttl_seconds=15), unbind_after=3600)
        await keeping.start()
        queue = bus.broker.queues[f"unit-count.{keeping.queue_name}"]
        first, _ = await connect(keeping, BOB)
        await keeping.remove(first)
        assert set(routing.user_bindings(BOB.id)) <= set(queue.bindings)  # kept
        bound = len(bus.binds)
        second, sink = await connect(keeping, BOB, session_id="b")
        assert len(bus.binds) == bound  # back: no broker call
        await wait_until(lambda: any(f.type == "hello" for f in sink.frames))
        await keeping.remove(second)
        await keeping.stop()

        brief = FanOut(bus, PresenceTracker("gw-2", FakeClock(), ttl_seconds=15), unbind_after=0.01)
        await brief.start()
        queue = bus.broker.queues[f"unit-count.{brief.queue_name}"]
        conn, _ = await connect(brief, CAROL)
        await brief.remove(conn)
        await wait_until(lambda: not set(routing.user_bindings(CAROL.id)) & set(queue.bindings))
        await brief.stop()
    finally:
        await bus.close()


class RoomLister:
    """The history service's answer to "which rooms is this user in", from a table kept here,
    counting the questions."""

    def __init__(self, rooms: dict[int, list[int]]) -> None:
        self.rooms = rooms
        self.asked: list[int] = []
        self.as_of = 0

    async def __call__(self, user_id: int) -> RoomList:
        self.asked.append(user_id)
        return RoomList(as_of=self.as_of, rooms=[
            RoomInfo(id=room_id, name=f"r{room_id}", owner=ALICE, open=True, history="all", member_count=2,
                     role="member")
            for room_id in self.rooms.get(user_id, [])
        ])


def in_room(mid: int, room_id: int, sender: UserRef = ALICE, action: str | None = None,
            user: UserRef | None = None) -> MessageStored:
    """A room message, or a membership event of ``user`` when ``action`` is given."""
    event = RoomEvent(action=action, user=user) if action is not None else None
    message = ChatMessage(id=mid, sender=sender, recipient_id=None, body=f"m{mid}", room_id=room_id, event=event,
                          created_at=datetime(2026, 1, 1, tzinfo=UTC), client_msg_id=f"c{mid}")
    return MessageStored(message=message)


async def test_a_user_back_within_the_grace_period_keeps_their_rooms_without_asking() -> None:
    """While a user's binding lingers their membership events still arrive and keep their rooms
    current: back in time, they connect without a room list and get the rooms they are in
    now; once the binding goes, so do their rooms."""
    bus = MemoryBus("unit-rooms")
    await bus.start()
    lister = RoomLister({BOB.id: [5]})
    fanout = FanOut(bus, PresenceTracker("gw-1", FakeClock(), ttl_seconds=15), room_loader=lister,
                    unbind_after=3600)
    await fanout.start()
    queue = bus.broker.queues[f"unit-rooms.{fanout.queue_name}"]
    try:
        first, _ = await connect(fanout, BOB)
        assert lister.asked == [BOB.id] and fanout.rooms.rooms_of(BOB.id) == {5}
        await fanout.remove(first)
        await first.finish()
        # Away: removed from room 5 and added to room 6, by events through his binding only
        # (this gateway holds no other member of either room).
        await bus.publish(routing.room_event(5, BOB.id), in_room(10, 5, action="removed", user=BOB))
        await bus.publish(routing.room_event(6, BOB.id), in_room(11, 6, sender=BOB, action="joined", user=BOB))
        await wait_until(lambda: fanout.rooms.rooms_of(BOB.id) == {6})
        await wait_until(lambda: routing.room_binding(6) in queue.bindings
                         and routing.room_binding(5) not in queue.bindings)

        second, sink = await connect(fanout, BOB, session_id="b")
        assert lister.asked == [BOB.id]  # not asked again
        await bus.publish(routing.message_stored(ALICE.id, None, 6), in_room(12, 6))
        await bus.publish(routing.message_stored(ALICE.id, None, 5), in_room(13, 5))
        await bus.publish(routing.MESSAGE_STORED_PUBLIC, stored(ALICE, "marker", mid=14))
        await wait_until(lambda: "marker" in sink.bodies())
        assert sink.bodies() == ["m12", "marker"]
        await fanout.remove(second)
        await second.finish()
    finally:
        await fanout.stop()

    # Once the binding goes, the rooms go with it, and a user connecting after that is asked.
    brief = FanOut(bus, PresenceTracker("gw-2", FakeClock(), ttl_seconds=15), room_loader=lister,
                   unbind_after=0.01)
    await brief.start()
    queue = bus.broker.queues[f"unit-rooms.{brief.queue_name}"]
    try:
        lister.asked.clear()
        conn, _ = await connect(brief, BOB)
        await wait_until(lambda: routing.room_binding(5) in queue.bindings)
        await brief.remove(conn)
        await conn.finish()
        await wait_until(lambda: not brief.rooms.knows(BOB.id) and routing.room_binding(5) not in queue.bindings)
        conn, _ = await connect(brief, BOB, session_id="b")
        assert lister.asked == [BOB.id, BOB.id]
        await brief.remove(conn)
        await conn.finish()
    finally:
        await brief.stop()
        await bus.close()
