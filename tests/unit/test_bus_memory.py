"""What the in-process bus does beyond the shared contract (tests/integration/test_bus_contract.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from chase.bus.factory import create_bus
from chase.bus.memory import MemoryBroker, MemoryBus
from chase.bus.port import BusUnavailable, Delivery, QueueSpec, RequestTimeout
from chase.schemas import Event, HistoryQuery, SessionRevoked
from tests.helpers import wait_until

QUERY = HistoryQuery(viewer_id=1, with_user_id=None, before_id=None, limit=5)


@pytest.fixture
async def bus():
    made = MemoryBus("unit")
    await made.start()
    yield made
    await made.close()


async def test_events_cross_as_copies_not_references(bus: MemoryBus) -> None:
    got: list[Event] = []

    async def handler(delivery: Delivery) -> None:
        got.append(delivery.event)
        await delivery.ack()

    await bus.consume(QueueSpec("q", bindings=("k",)), handler)
    sent = SessionRevoked(user_id=3, session_id="s")
    await bus.publish("k", sent)
    await wait_until(lambda: got)
    assert got == [sent]
    assert got[0] is not sent


async def test_exclusive_queue_belongs_to_its_connection() -> None:
    broker = MemoryBroker()
    owner, other = MemoryBus("ns", broker=broker), MemoryBus("ns", broker=broker)
    await owner.start()
    await other.start()
    spec = QueueSpec("gateway.a", bindings=("x",), durable=False, exclusive=True)

    async def ignore(delivery: Delivery) -> None:
        await delivery.ack()

    await owner.consume(spec, ignore)
    with pytest.raises(BusUnavailable):
        await other.consume(spec, ignore)
    await owner.close()
    assert "ns.gateway.a" not in broker.queues
    await other.consume(spec, ignore)
    await other.close()


async def test_namespaces_do_not_see_each_other() -> None:
    broker = MemoryBroker()
    a, b = MemoryBus("a", broker=broker), MemoryBus("b", broker=broker)
    await a.start()
    await b.start()
    got: list[str] = []

    async def handler(delivery: Delivery) -> None:
        got.append(delivery.routing_key)
        await delivery.ack()

    await a.consume(QueueSpec("q", bindings=("#",)), handler)
    await b.publish("from.b", SessionRevoked(user_id=1, session_id="b"))
    await a.publish("from.a", SessionRevoked(user_id=1, session_id="a"))
    await wait_until(lambda: got)
    assert got == ["from.a"]
    await a.close()
    await b.close()


async def test_failing_responder_makes_the_request_time_out(bus: MemoryBus) -> None:
    async def broken(event: Event) -> Event:
        raise RuntimeError("database on fire")

    await bus.serve(QueueSpec("rpc", bindings=("rpc.x",), durable=False), broken)
    with pytest.raises(RequestTimeout):
        await bus.request("rpc.x", QUERY, timeout=0.2)


async def test_close_fails_a_pending_request(bus: MemoryBus) -> None:
    started = asyncio.Event()

    async def stuck(event: Event) -> Event:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    await bus.serve(QueueSpec("rpc", bindings=("rpc.x",), durable=False), stuck)
    pending = asyncio.ensure_future(bus.request("rpc.x", QUERY, timeout=30))
    await started.wait()
    await bus.close()
    with pytest.raises(BusUnavailable):
        await pending


async def test_a_handler_that_always_fails_does_not_starve_the_loop(bus: MemoryBus) -> None:
    attempts = 0

    async def always_fails(delivery: Delivery) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("never works")

    sub = await bus.consume(QueueSpec("hot", bindings=("hot",), durable=False), always_fails)
    await bus.publish("hot", SessionRevoked(user_id=1, session_id="x"))
    # wait_until only gets to run if the redelivery loop yields to the event loop.
    await wait_until(lambda: attempts >= 20)
    await sub.cancel()


async def test_ack_after_cancel_is_harmless(bus: MemoryBus) -> None:
    held: list[Delivery] = []

    async def hold(delivery: Delivery) -> None:
        held.append(delivery)

    spec = QueueSpec("late", bindings=("late",))
    sub = await bus.consume(spec, hold)
    await bus.publish("late", SessionRevoked(user_id=1, session_id="x"))
    await wait_until(lambda: held)
    await sub.cancel()
    await held[0].ack()  # the delivery went back to the queue; this must not lose it
    again: list[Delivery] = []

    async def take(delivery: Delivery) -> None:
        again.append(delivery)
        await delivery.ack()

    await bus.consume(spec, take)
    await wait_until(lambda: again)
    assert again[0].redelivered


def test_create_bus_picks_the_adapter_without_connecting() -> None:
    assert isinstance(create_bus(None), MemoryBus)
    from chase.bus.rabbitmq import RabbitBus

    rabbit = create_bus("amqp://guest:guest@127.0.0.1:1/", "ns")
    assert isinstance(rabbit, RabbitBus)
    assert rabbit.exchange_name == "ns.events"


def test_the_embedded_default_never_imports_aio_pika() -> None:
    code = "import sys, chase.bus.factory as f; f.create_bus(None); print('aio_pika' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_redact_hides_the_password() -> None:
    from chase.bus.rabbitmq import redact

    assert "pw" not in redact("amqp://user:pw@host:5672/vh")
    assert redact("amqp://host/") == "amqp://host/"
