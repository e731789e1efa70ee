"""A broker connection loss: the RabbitMQ adapter refuses publishes while cut off, then recovers.

The bus reaches the real RabbitMQ through a :class:`tests.faults.TcpForwarder`, so the test can
cut the connection (reset, then "connection refused") and restore it without touching the
broker others use. After the restore the robust connection reconnects by itself: publishing
works again, consumers are consuming again, unacked deliveries come back (nothing is lost) and
request/reply works again (the direct reply-to consumer is restored too).

The last test cuts the whole system's broker connection (auth, gateway and persistence share
one bus): sends during the cut are refused (``unavailable``, retryable, no ack), connected
clients stay connected, and after the restore the fan-out resumes for them and a resend of the
refused message is acked and stored once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
import sqlalchemy as sa
from yarl import URL

from chase.bus.port import BusUnavailable, Delivery, QueueSpec
from chase.bus.rabbitmq import RabbitBus
from chase.schemas import ErrorFrame, Event, MessageFrame, SessionRevoked
from chase.store.tables import messages
from tests.faults import TcpForwarder
from tests.helpers import wait_until
from tests.integration.system import System, TestClient, delete_namespace, running_system

pytestmark = pytest.mark.timeout(120)

#: How long the adapter may take to notice the restore and reconnect.
RECOVERY = 30.0
PUBLISH_TIMEOUT = 2.0


def ev(tag: str) -> SessionRevoked:
    return SessionRevoked(user_id=1, session_id=tag)


def tag(event: Event) -> str:
    assert isinstance(event, SessionRevoked)
    return event.session_id


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[TcpForwarder]:
    target = URL(amqp_url)
    async with TcpForwarder(target.host or "127.0.0.1", target.port or 5672) as forwarder:
        yield forwarder


@pytest.fixture
async def bus(amqp_url: str, bus_namespace: str, broker: TcpForwarder) -> AsyncIterator[RabbitBus]:
    url = str(URL(amqp_url).with_port(broker.port))
    made = RabbitBus(url, bus_namespace, connect_timeout=5, publish_timeout=PUBLISH_TIMEOUT)
    await made.start()
    try:
        yield made
    finally:
        await made.close()
        await delete_namespace(amqp_url, made.declared_queues, bus_namespace)


async def publish_when_back(bus: RabbitBus, routing_key: str, event: Event) -> None:
    """Publish ``event`` as soon as the bus takes it again (each failed try is bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY
    while True:
        try:
            await bus.publish(routing_key, event)
            return
        except BusUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_publish_fails_fast_during_a_cut_and_everything_recovers_after(
    bus: RabbitBus, broker: TcpForwarder
) -> None:
    received: list[Delivery] = []
    hold = {"held-1", "held-2"}  # left unacked when the connection goes: must come back

    async def handler(delivery: Delivery) -> None:
        received.append(delivery)
        if tag(delivery.event) not in hold or delivery.redelivered:
            await delivery.ack()

    def tags() -> list[str]:
        return [tag(d.event) for d in received]

    async def responder(event: Event) -> Event:
        return ev(f"reply-to-{tag(event)}")

    await bus.consume(QueueSpec("outage.durable", bindings=("outage.#",)), handler)
    await bus.serve(QueueSpec("outage.rpc", bindings=("rpc.outage",), durable=False), responder)

    for name in ("acked-1", "held-1", "held-2", "acked-2"):
        await bus.publish("outage.event", ev(name))
    await wait_until(lambda: len(received) == 4)
    assert tag(await bus.request("rpc.outage", ev("before"))) == "reply-to-before"
    accepted = broker.accepted

    await broker.cut()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BusUnavailable):
        await bus.publish("outage.event", ev("during-cut"))
    assert loop.time() - started < PUBLISH_TIMEOUT + 2, "a publish during the cut must fail promptly"
    with pytest.raises(BusUnavailable):
        await bus.request("rpc.outage", ev("during-cut"), timeout=PUBLISH_TIMEOUT)

    await broker.restore()
    await publish_when_back(bus, "outage.event", ev("after-1"))
    assert broker.accepted > accepted, "the bus reconnected through the forwarder"

    # The subscription is back: events published after the restore arrive, and the two held
    # (unacked) when the connection dropped are delivered again, marked redelivered.
    await wait_until(lambda: "after-1" in tags(), timeout=RECOVERY)
    await bus.publish("outage.event", ev("after-2"))
    await wait_until(lambda: "after-2" in tags(), timeout=RECOVERY)
    await wait_until(
        lambda: all(t in [tag(d.event) for d in received if d.redelivered] for t in hold), timeout=RECOVERY
    )
    assert "during-cut" not in tags()
    # The acked ones are not delivered again.
    assert tags().count("acked-1") == 1 and tags().count("acked-2") == 1

    # Request/reply works again: the responder consumes again and replies reach us.
    reply = await bus.request("rpc.outage", ev("after"), timeout=RECOVERY)
    assert tag(reply) == "reply-to-after"


async def test_an_exclusive_queue_and_its_runtime_bindings_come_back(bus: RabbitBus, broker: TcpForwarder) -> None:
    """The gateway's case: an exclusive fan-out queue, bound and unbound per user at runtime."""
    received: list[str] = []

    async def handler(delivery: Delivery) -> None:
        received.append(tag(delivery.event))
        await delivery.ack()

    spec = QueueSpec("outage.gateway", bindings=("static",), durable=False, exclusive=True, max_length=100)
    await bus.consume(spec, handler)
    restored = asyncio.Event()

    async def on_reconnect() -> None:
        restored.set()

    bus.on_reconnect(on_reconnect)
    await bus.bind("outage.gateway", "user.1")
    await bus.bind("outage.gateway", "user.2")
    await bus.unbind("outage.gateway", "user.2")

    await broker.cut()
    loop = asyncio.get_running_loop()
    for operation in (
        lambda: bus.bind("outage.gateway", "user.3"),
        lambda: bus.unbind("outage.gateway", "user.1"),
        lambda: bus.consume(QueueSpec("outage.other", durable=False, exclusive=True), handler),
        lambda: bus.publish("static", ev("during-cut")),
    ):
        started = loop.time()
        with pytest.raises(BusUnavailable):
            await operation()
        assert loop.time() - started < PUBLISH_TIMEOUT + 2, "an operation during the cut must fail promptly"

    await broker.restore()
    # Until the bus says so, the queue may not be declared again yet (a publish can already
    # go through on the restored publishing channel and be lost): wait for the bus's word.
    await asyncio.wait_for(restored.wait(), RECOVERY)
    await publish_when_back(bus, "static", ev("static-after"))
    # The queue was re-declared (it died with the old connection) with its static binding and
    # the runtime one still in force; the unbound key stays unbound; binding works again.
    await bus.publish("user.1", ev("user.1-after"))
    await bus.publish("user.2", ev("user.2-after"))
    await bus.bind("outage.gateway", "user.3")
    await bus.publish("user.3", ev("user.3-after"))
    await bus.publish("static", ev("fence"))  # published last: whatever comes, comes before it
    await wait_until(lambda: "fence" in received, timeout=RECOVERY)
    assert received[received.index("static-after") :] == ["static-after", "user.1-after", "user.3-after", "fence"]
    assert "during-cut" not in received and "user.2-after" not in received


async def test_a_publish_left_unconfirmed_moves_publishing_to_a_new_channel(
    bus: RabbitBus, broker: TcpForwarder
) -> None:
    """A publish the broker does not confirm in time, with the connection still up, is refused
    and publishing moves to a new channel; consumers, requests and the connection carry on.
    (The link is frozen for a moment here; in a cluster it was a channel RabbitMQ left stuck
    for good after a quorum queue's leader went down.)"""
    received: list[str] = []

    async def handler(delivery: Delivery) -> None:
        received.append(tag(delivery.event))
        await delivery.ack()

    async def responder(event: Event) -> Event:
        return ev(f"reply-to-{tag(event)}")

    await bus.consume(QueueSpec("stall.durable", bindings=("stall.#",)), handler)
    await bus.serve(QueueSpec("stall.rpc", bindings=("rpc.stall",), durable=False), responder)
    await bus.publish("stall.event", ev("before"))
    assert bus.publisher_renewals == 0

    broker.freeze()
    try:
        with pytest.raises(BusUnavailable):
            await bus.publish("stall.event", ev("unconfirmed"))
    finally:
        broker.thaw()  # well within two heartbeats: the connection itself survives
    await wait_until(lambda: bus.publisher_renewals == 1, timeout=RECOVERY)
    assert bus.is_ready()

    await bus.publish("stall.event", ev("after"))
    await wait_until(lambda: "after" in received, timeout=RECOVERY)
    # The stalled copy was taken late by the broker, or not: either way it came at most once.
    assert received.count("unconfirmed") <= 1 and received.count("before") == 1
    # Replies come to the new channel's direct reply-to consumer.
    assert tag(await bus.request("rpc.stall", ev("after"), timeout=RECOVERY)) == "reply-to-after"


async def test_a_publish_the_broker_refuses_moves_publishing_to_a_new_channel(
    bus: RabbitBus, amqp_url: str
) -> None:
    """A nack (here: a full queue that rejects publishes; in a cluster, a channel RabbitMQ left
    stuck after a quorum queue's leader went down, nacking every publish for good) is refused
    at once, and publishing moves to a new channel, at most once per publish timeout."""
    full = f"{bus.namespace}.stall.full"
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            full, auto_delete=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        await queue.bind(bus.exchange_name, routing_key="stall.full")
        await bus.publish("stall.full", ev("fits"))
        for _ in range(3):  # one bad spell: many refusals, one renewal
            with pytest.raises(BusUnavailable, match="refused"):
                await bus.publish("stall.full", ev("rejected"))
        await wait_until(lambda: bus.publisher_renewals == 1, timeout=RECOVERY)
        await bus.publish("stall.other", ev("after"))  # the new channel publishes
        assert bus.publisher_renewals == 1
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()


async def send(client: TestClient, body: str, client_msg_id: str | None = None) -> str:
    client_msg_id = client_msg_id or uuid.uuid4().hex
    await client.send_frame(type="send", client_msg_id=client_msg_id, recipient_id=None, body=body)
    return client_msg_id


def about(client_msg_id: str):  # noqa: ANN201
    return lambda f: f.client_msg_id == client_msg_id


def has_body(body: str):  # noqa: ANN201
    return lambda f: isinstance(f, MessageFrame) and f.message.body == body


async def rows_of(system: System, client_msg_id: str) -> int:
    async with system.engine.connect() as conn:  # type: ignore[attr-defined]
        query = sa.select(sa.func.count()).select_from(messages).where(messages.c.client_msg_id == client_msg_id)
        return (await conn.execute(query)).scalar_one()


async def send_until_acked(client: TestClient, body: str, client_msg_id: str) -> list[ErrorFrame]:
    """Send (and resend while refused as unavailable) until acked; the refusals seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY
    refusals: list[ErrorFrame] = []
    while True:
        await send(client, body, client_msg_id)
        async with asyncio.timeout(RECOVERY):
            while True:
                frame = await client.next_frame(RECOVERY)
                if frame.type in ("ack", "error") and getattr(frame, "client_msg_id", None) == client_msg_id:
                    break
        if frame.type == "ack":
            return refusals
        assert isinstance(frame, ErrorFrame) and (frame.code, frame.retryable) == ("unavailable", True), frame
        refusals.append(frame)
        assert loop.time() < deadline, "sends still refused long after the broker came back"
        await asyncio.sleep(0.2)  # client-side retry pacing, not synchronisation


async def test_a_broker_outage_refuses_sends_and_the_system_recovers(
    dev_certs: Path, mariadb_url: str, amqp_url: str, bus_namespace: str
) -> None:
    target = URL(amqp_url)
    async with TcpForwarder(target.host or "127.0.0.1", target.port or 5672) as broker:
        async with running_system(
            mariadb_url,
            certs_dir=dev_certs,
            amqp_url=str(target.with_port(broker.port)),
            namespace=bus_namespace,
        ) as system:
            alice, bob = await system.login("alice"), await system.login("bob")
            async with system.client(alice.token) as a, system.client(bob.token) as b:
                await a.expect("hello")
                await b.expect("hello")
                first = await send(a, "before the outage")
                await a.expect("ack", about(first))
                await b.expect("message", has_body("before the outage"))

                await broker.cut()
                refused = await send(a, "while the broker is down")
                error = await a.expect("error", about(refused), timeout=10)
                assert isinstance(error, ErrorFrame)
                assert (error.code, error.retryable) == ("unavailable", True)

                await broker.restore()
                # Both clients are still connected and told to sync: the gateway's queue died
                # with its connection, so live delivery may have missed something meanwhile.
                for client in (a, b):
                    resync = await client.expect("resync", timeout=RECOVERY)
                    assert resync.reason
                # The gateway keeps its WebSockets open through a broker outage, and its
                # fan-out queue comes back with the bindings.
                await send_until_acked(a, "while the broker is down", refused)
                await b.expect("message", has_body("while the broker is down"), timeout=RECOVERY)
                after = await send(a, "after the outage")
                await a.expect("ack", about(after), timeout=RECOVERY)
                await b.expect("message", has_body("after the outage"), timeout=RECOVERY)

                assert len([f for f in a.seen if f.type == "ack" and f.client_msg_id == refused]) == 1
            for client_msg_id in (first, refused, after):
                assert await rows_of(system, client_msg_id) == 1
            bodies = [f.message.body for f in b.seen if isinstance(f, MessageFrame)]
            assert bodies.count("while the broker is down") == 1
