"""A database outage in the whole system: RabbitMQ, MariaDB, real WebSocket clients over TLS.

The persistence worker reaches MariaDB through a :class:`tests.faults.TcpForwarder`, so the
test can cut it off and restore it while auth, the gateway, the broker and the test's own
queries go on. Sends made while the gateway knows the store is down are refused at once
(``unavailable``, retryable); sends already published wait and are acked after the restore.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from chase import routing
from chase.bus.port import Delivery, QueueSpec
from chase.schemas import ErrorFrame, PresenceChanged, StoreStatus, UserRef
from chase.store.tables import messages
from tests.faults import TcpForwarder
from tests.helpers import wait_until
from tests.integration.system import System, TestClient, running_system

pytestmark = pytest.mark.timeout(90)

GHOST = UserRef(id=10_000, username="ghost")


async def send(client: TestClient, body: str, client_msg_id: str | None = None) -> str:
    client_msg_id = client_msg_id or uuid.uuid4().hex
    await client.send_frame(type="send", client_msg_id=client_msg_id, recipient_id=None, body=body)
    return client_msg_id


def is_for(client_msg_id: str):  # noqa: ANN201
    return lambda f: f.client_msg_id == client_msg_id


def acks_of(client: TestClient, client_msg_id: str) -> list:
    return [f for f in client.seen if f.type == "ack" and f.client_msg_id == client_msg_id]


async def acked(client: TestClient, *client_msg_ids: str, timeout: float) -> None:
    """Wait until each of ``client_msg_ids`` is acked, in whatever order the acks come."""
    waiting = {cid for cid in client_msg_ids if not acks_of(client, cid)}
    while waiting:
        frame = await client.expect("ack", lambda f: f.client_msg_id in waiting, timeout=timeout)
        waiting.discard(frame.client_msg_id)


async def rows_of(system: System, client_msg_id: str) -> int:
    async with system.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(messages).where(messages.c.client_msg_id == client_msg_id)
        return (await conn.execute(query)).scalar_one()


async def watch_store_status(system: System) -> list[bool]:
    """Every StoreStatus the worker publishes, as a gateway would hear it."""
    news: list[bool] = []

    async def record(delivery: Delivery) -> None:
        if isinstance(delivery.event, StoreStatus):
            news.append(delivery.event.available)
        await delivery.ack()

    await system.bus.consume(QueueSpec("test.store-status", bindings=(routing.STORE_STATUS,), durable=False), record)
    return news


async def gateway_caught_up(system: System, client: TestClient) -> None:
    """Return once the gateway has handled everything published on the bus before this call.

    A presence event is published after them on the same channel, so it reaches the gateway's
    queue after them; the client seeing it means the gateway handled them all.
    """
    marker = PresenceChanged(gateway_id="gw-marker", user=GHOST, online=True)
    await system.bus.publish(routing.presence("gw-marker"), marker)
    await client.expect("presence", lambda f: GHOST in f.online)


async def test_a_database_outage_refuses_new_sends_and_loses_nothing(
    dev_certs: Path, mariadb_url: str, amqp_url: str, bus_namespace: str
) -> None:
    target = make_url(mariadb_url)
    async with TcpForwarder(target.host or "127.0.0.1", target.port or 3306) as database:
        worker_url = target.set(port=database.port).render_as_string(hide_password=False)
        async with running_system(
            mariadb_url,
            certs_dir=dev_certs,
            amqp_url=amqp_url,
            namespace=bus_namespace,
            persistence_database_url=worker_url,
        ) as system:
            news = await watch_store_status(system)
            alice = await system.login("alice")
            async with system.client(alice.token) as a:
                await a.expect("hello")
                first = await send(a, "before the outage")
                await a.expect("ack", is_for(first))

                just_before = await send(a, "sent as the database goes")
                await database.cut()
                # Nobody has noticed the outage yet: this one is published and waits for the store.
                in_flight = await send(a, "published before the outage was noticed")
                await wait_until(lambda: False in news, timeout=20)
                await gateway_caught_up(system, a)

                refused = await send(a, "while the database is down")
                error = await a.expect("error", is_for(refused))
                assert isinstance(error, ErrorFrame)
                assert (error.code, error.retryable) == ("unavailable", True)
                assert error.message == "messages cannot be stored right now; try again shortly"
                assert not acks_of(a, in_flight) and not acks_of(a, refused)

                await database.restore()
                # The worker's retry gets through: the waiting sends are acked, nothing is lost.
                await acked(a, in_flight, just_before, timeout=30)
                assert news[-1] is True
                # The worker announced "available" before publishing that ack, on the same
                # queue: the gateway accepts sends again, and the refused one was never sent.
                assert not acks_of(a, refused)
                await send(a, "while the database is down", client_msg_id=refused)
                ack = await a.expect("ack", is_for(refused))
                assert not ack.duplicate

            for client_msg_id in (first, just_before, in_flight, refused):
                assert await rows_of(system, client_msg_id) == 1
            assert len(acks_of(a, refused)) == 1 and len(acks_of(a, in_flight)) == 1
