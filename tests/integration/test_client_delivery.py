"""Delivery as a user lives it, the client core against the real system over TLS.

Messages queued offline go out in the order written; a burst bigger than the gateway's rate
limit is stored in order, and so are sends refused while the database is down; private messages missed while logged out are loaded at login; unsent
messages outlive the client and are sent by the next one under the same ids.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from chase.store.tables import messages
from client.core.conversations import PUBLIC
from client.core.events import ClientState, SendFailed
from client.core.local import LocalState, account_file
from client.core.session import chat_client
from tests.faults import TcpForwarder
from tests.helpers import wait_until
from tests.integration.system import System, running_system
from tests.integration.test_client_core import bodies, connected, endpoints, login

pytestmark = pytest.mark.timeout(120)


async def stored(system: System) -> list[tuple[str, str]]:
    """(body, client_msg_id) of every stored message, in id order."""
    async with system.engine.connect() as conn:
        rows = await conn.execute(sa.select(messages.c.body, messages.c.client_msg_id).order_by(messages.c.id))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_45_messages_queued_offline_are_stored_in_order(system: System) -> None:
    alice, _ = await connected(system, await login(system, "alice"))
    try:
        await system.stop_gateway()
        await wait_until(lambda: alice.state is not ClientState.CONNECTED)
        queued = [await alice.send(f"queued {n}") for n in range(45)]
        await system.start_gateway()
        await asyncio.wait_for(asyncio.gather(*(q.acked for q in queued)), 60)
        assert [body for body, _ in await stored(system)] == [f"queued {n}" for n in range(45)]
        assert bodies(alice) == [f"queued {n}" for n in range(45)]
    finally:
        await alice.close()


async def test_a_burst_over_the_rate_limit_is_stored_in_the_order_written(system: System) -> None:
    # 100 at once against a gateway allowing 40 at once, then 20 a second.
    alice, _ = await connected(system, await login(system, "alice"))
    try:
        sent = [await alice.send(f"burst {n}") for n in range(100)]
        await asyncio.wait_for(asyncio.gather(*(s.acked for s in sent)), 60)
        assert [body for body, _ in await stored(system)] == [f"burst {n}" for n in range(100)]
    finally:
        await alice.close()


async def test_login_loads_private_messages_missed_even_when_a_newer_public_one_exists(system: System) -> None:
    bob_session = await login(system, "bob")
    alice, _ = await connected(system, await login(system, "alice"))
    try:
        await asyncio.wait_for((await alice.send("psst, bob", to=bob_session.user.id)).acked, 10)
        await asyncio.wait_for((await alice.send("hello room")).acked, 10)
        bob, _ = await connected(system, bob_session)
        try:
            assert bodies(bob, alice.me.id) == ["psst, bob"]
            assert bodies(bob, PUBLIC) == ["hello room"]
        finally:
            await bob.close()
    finally:
        await alice.close()


async def test_unsent_messages_outlive_the_client_and_the_next_one_sends_them(system: System,
                                                                              tmp_path: Path) -> None:
    session = await login(system, "alice")
    path = account_file(tmp_path, system.auth_url, session.user.id)
    first = chat_client(endpoints(system), session, local=LocalState(path, session.user.id).load())
    await first.start()
    await asyncio.wait_for((await first.send("stored")).acked, 10)
    await system.stop_gateway()
    await wait_until(lambda: first.state is not ClientState.CONNECTED)
    queued = [await first.send(f"kept {n}") for n in range(3)]
    assert first.unsent == 3
    await first.close()  # the app is closed with three messages unsent

    await system.start_gateway()
    again = chat_client(endpoints(system), session, local=LocalState(path, session.user.id).load())
    await again.start()
    try:
        await wait_until(lambda: again.unsent == 0, timeout=30)
        assert await stored(system) == [("stored", (await stored(system))[0][1])] + [
            (f"kept {n}", q.client_msg_id) for n, q in enumerate(queued)]
        assert bodies(again) == ["stored", "kept 0", "kept 1", "kept 2"]
        assert LocalState(path, session.user.id).load().outbox == []
    finally:
        await again.close()


async def test_sends_refused_while_the_database_is_down_are_stored_in_order_after_it(
    dev_certs: Path, mariadb_url: str, amqp_url: str, bus_namespace: str
) -> None:
    target = make_url(mariadb_url)
    async with TcpForwarder(target.host or "127.0.0.1", target.port or 3306) as database:
        worker_url = target.set(port=database.port).render_as_string(hide_password=False)
        async with running_system(mariadb_url, certs_dir=dev_certs, amqp_url=amqp_url, namespace=bus_namespace,
                                  persistence_database_url=worker_url) as system:
            alice, events = await connected(system, await login(system, "alice"))
            try:
                await asyncio.wait_for((await alice.send("before")).acked, 10)
                await database.cut()
                # Refused with `unavailable` once the gateway hears of the outage: the whole
                # outbox pauses and goes again, in order, until the store is back.
                outgoing = [await alice.send(f"during {n}") for n in range(20)]
                await wait_until(lambda: any(isinstance(e, SendFailed) and e.code == "unavailable"
                                             for e in events), timeout=30)
                await database.restore()
                await asyncio.wait_for(asyncio.gather(*(o.acked for o in outgoing)), 60)
                assert [body for body, _ in await stored(system)] == ["before"] + [f"during {n}" for n in range(20)]
            finally:
                await alice.close()
