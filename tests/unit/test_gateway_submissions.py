"""The gateway's grouped publishing of sends, with the in-process bus and the connection's
sans-I/O session: what the broker gets, and what each connection is answered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from chase import routing
from chase.bus.memory import MemoryBus
from chase.bus.port import BusUnavailable, Delivery, QueueSpec
from chase.clock import FakeClock
from chase.schemas import ErrorFrame, Event, Limits, MessagesSubmitted, MessageSubmitted, UserRef
from services.gateway.session import ConnectionSession, Publish, Send
from services.gateway.submissions import SubmissionPublisher
from tests.helpers import wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMITS = Limits(max_body_chars=4000, max_frame_bytes=65536, rate_per_second=1000.0, rate_burst=1000)


def send(sender: int, cmid: str) -> MessageSubmitted:
    return MessageSubmitted(sender=UserRef(id=sender, username=f"u{sender}"), recipient_id=None, body="hi",
                            client_msg_id=cmid, submitted_at=NOW)


class RecordingBus(MemoryBus):
    """Records what is published on message.submitted; refuses it all while ``refusing``."""

    def __init__(self) -> None:
        super().__init__("unit")
        self.published: list[Event] = []
        self.refusing = False

    async def publish(self, routing_key: str, event: Event) -> None:
        if routing_key == routing.MESSAGE_SUBMITTED:
            if self.refusing:
                raise BusUnavailable("the broker refused message.submitted")
            self.published.append(event)
        await super().publish(routing_key, event)


def groups(published: list[Event]) -> list[list[str]]:
    return [[i.client_msg_id for i in (e.items if isinstance(e, MessagesSubmitted) else [e])]  # type: ignore[union-attr]
            for e in published]


@pytest.fixture
async def bus():
    bus = RecordingBus()
    await bus.start()
    yield bus
    await bus.close()


async def test_sends_of_one_turn_go_out_as_one_event_and_a_lone_one_as_it_is(bus):
    publisher = SubmissionPublisher(bus)
    await asyncio.gather(*(publisher.publish(send(n, f"m{n}")) for n in (1, 2, 3)))
    await publisher.publish(send(1, "alone"))
    assert groups(bus.published) == [["m1", "m2", "m3"], ["alone"]]
    assert isinstance(bus.published[0], MessagesSubmitted)
    assert isinstance(bus.published[1], MessageSubmitted)  # what a worker of any version reads
    await publisher.stop()


async def test_a_full_group_goes_at_once(bus):
    publisher = SubmissionPublisher(bus, max_group=2)
    await asyncio.gather(*(publisher.publish(send(n, f"m{n}")) for n in (1, 2, 3, 4, 5)))
    assert groups(bus.published) == [["m1", "m2"], ["m3", "m4"], ["m5"]]
    await publisher.stop()


async def test_each_senders_order_holds_across_groups(bus):
    # Each connection awaits its send's confirm before it sends the next (as the read loop
    # does): its sends go in successive groups, in its order, never two in one group.
    publisher = SubmissionPublisher(bus)
    seen: list[str] = []

    async def observe(delivery: Delivery) -> None:
        event = delivery.event
        seen.extend(i.client_msg_id for i in (event.items if isinstance(event, MessagesSubmitted) else [event]))  # type: ignore[union-attr]
        await delivery.ack()

    await bus.consume(QueueSpec("worker-like", bindings=(routing.MESSAGE_SUBMITTED,)), observe)

    async def connection(sender: int, count: int) -> None:
        for i in range(count):
            await publisher.publish(send(sender, f"s{sender}-{i}"))

    await asyncio.gather(connection(1, 5), connection(2, 3), connection(3, 4))
    await publisher.stop()
    for group in groups(bus.published):
        senders = [cmid.split("-")[0] for cmid in group]
        assert len(senders) == len(set(senders))
    assert groups(bus.published)[0] == ["s1-0", "s2-0", "s3-0"]  # grouped: one event for three sends
    await wait_until(lambda: len(seen) == 12)
    for sender, count in ((1, 5), (2, 3), (3, 4)):
        assert [c for c in seen if c.startswith(f"s{sender}-")] == [f"s{sender}-{i}" for i in range(count)]


async def test_a_refused_group_answers_each_of_its_sends_with_its_own_error(bus):
    bus.refusing = True
    publisher = SubmissionPublisher(bus)
    clock = FakeClock(NOW)
    sessions = [ConnectionSession(UserRef(id=n, username=f"u{n}"), f"s{n}", LIMITS, clock) for n in (1, 2, 3)]
    publishes = []
    for n, session in enumerate(sessions, start=1):
        [action] = session.receive_text(f'{{"type": "send", "client_msg_id": "c{n}", "body": "hi"}}')
        assert isinstance(action, Publish)
        publishes.append(action)

    async def execute(session: ConnectionSession, action: Publish) -> list[ErrorFrame]:
        # What GatewayServer._execute does with a send.
        assert isinstance(action.event, MessageSubmitted)
        try:
            await publisher.publish(action.event)
        except BusUnavailable:
            return [a.frame for a in session.publish_failed(action.client_msg_id) if isinstance(a, Send)]  # type: ignore[misc]
        return []

    answers = await asyncio.gather(*(execute(s, p) for s, p in zip(sessions, publishes, strict=True)))
    for n, (session, frames) in enumerate(zip(sessions, answers, strict=True), start=1):
        [error] = frames
        assert (error.code, error.client_msg_id, error.retryable) == ("unavailable", f"c{n}", True)
        assert session.pending == frozenset()
    assert bus.published == []
    await publisher.stop()


async def test_a_send_whose_connection_gave_up_before_its_turn_is_not_published(bus):
    publisher = SubmissionPublisher(bus)
    kept = asyncio.ensure_future(publisher.publish(send(1, "kept")))
    dropped = asyncio.ensure_future(publisher.publish(send(2, "dropped")))
    await asyncio.sleep(0)  # both wait for the turn to end
    dropped.cancel()
    await kept
    assert groups(bus.published) == [["kept"]]
    await publisher.stop()
