"""The client core against the real system over TLS (auth, gateway, persistence).

Runs on the embedded default and on RabbitMQ + MariaDB, like the gateway's own tests.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from chase.store.tables import messages
from chase.tls import ensure_dev_certs
from client.core.api import AuthSession
from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient
from client.core.conversations import PUBLIC
from client.core.endpoints import Endpoints
from client.core.errors import CertificateNotTrusted, InvalidCredentials, SessionExpired, UsernameTaken
from client.core.events import ClientEvent, ClientState, SessionEnded
from client.core.session import chat_client, open_api
from tests.helpers import wait_until
from tests.integration.system import PASSWORD, System

pytestmark = pytest.mark.timeout(90)


def endpoints(system: System) -> Endpoints:
    return Endpoints.resolve(system.auth_url, system.gateway_url, system.ca_path)


async def login(system: System, name: str, *, register: bool = True) -> AuthSession:
    api = open_api(endpoints(system))
    try:
        if register:
            await api.register(name, PASSWORD)
        return await api.login(name, PASSWORD)
    finally:
        await api.aclose()


async def connected(system: System, session: AuthSession, attempts: int = 50) -> tuple[ChatClient, list[ClientEvent]]:
    # A short real backoff: a RabbitMQ gateway takes a moment to stop and start again.
    policy = BackoffPolicy(base=0.05, cap=0.3, max_attempts=attempts)
    client = chat_client(endpoints(system), session, policy=policy)
    events: list[ClientEvent] = []
    client.subscribe(events.append)
    await client.start()
    return client, events


def bodies(client: ChatClient, conversation: int | None = PUBLIC) -> list[str]:
    return [m.body for m in client.store.messages(conversation)]


async def stored_count(system: System) -> int:
    async with system.engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar_one()


async def test_register_login_errors_and_directory(system: System) -> None:
    api = open_api(endpoints(system))
    try:
        await api.register("alice", PASSWORD)
        with pytest.raises(UsernameTaken):
            await api.register("ALICE", PASSWORD)
        with pytest.raises(InvalidCredentials):
            await api.login("alice", "wrong password!")
        session = await api.login("alice", PASSWORD)
        await api.register("bob", PASSWORD)
        assert [u.username for u in await api.all_users(session, page_size=1)] == ["alice", "bob"]
        await api.logout(session)
        with pytest.raises(SessionExpired):
            await api.me(session)
    finally:
        await api.aclose()


async def test_public_and_private_messages_between_two_clients(system: System) -> None:
    alice, _ = await connected(system, await login(system, "alice"))
    bob_session = await login(system, "bob")
    bob, _ = await connected(system, bob_session)
    try:
        ack = await asyncio.wait_for((await alice.send("hello room")).acked, 10)
        await asyncio.wait_for((await alice.send("psst bob", to=bob_session.user.id)).acked, 10)
        await wait_until(lambda: bodies(bob) == ["hello room"] and bodies(bob, alice.me.id) == ["psst bob"])
        assert bob.store.messages(PUBLIC)[0].id == ack.message_id
        assert bodies(alice) == ["hello room"] and bodies(alice, bob.me.id) == ["psst bob"]
        # History: a third client logging in later sees the room, not the private message.
        carol, _ = await connected(system, await login(system, "carol"))
        assert bodies(carol) == ["hello room"] and bodies(carol, alice.me.id) == []
        await carol.close()
    finally:
        await alice.close()
        await bob.close()


async def test_gateway_restart_loses_and_doubles_nothing(system: System) -> None:
    alice, alice_events = await connected(system, await login(system, "alice"))
    bob, _ = await connected(system, await login(system, "bob"))
    try:
        await asyncio.wait_for((await alice.send("before")).acked, 10)
        await wait_until(lambda: bodies(bob) == ["before"])
        await system.stop_gateway()
        await wait_until(lambda: alice.state is not ClientState.CONNECTED and bob.state is not ClientState.CONNECTED)
        # Sent while the gateway is down: queued in the outbox, sent after the reconnect.
        queued = [await alice.send(f"while down {n}") for n in range(3)]
        await system.start_gateway()
        await asyncio.wait_for(asyncio.gather(*(q.acked for q in queued)), 30)
        await asyncio.wait_for((await bob.send("after")).acked, 30)
        expected = ["before", "while down 0", "while down 1", "while down 2", "after"]
        await wait_until(lambda: bodies(alice) == expected and bodies(bob) == expected)
        assert await stored_count(system) == 5
        ids = [m.id for m in bob.store.messages(PUBLIC)]
        assert ids == sorted(ids)
    finally:
        await alice.close()
        await bob.close()


async def test_unacked_messages_are_resent_with_their_original_ids(system: System) -> None:
    alice, _ = await connected(system, await login(system, "alice"))
    try:
        # Queue a message with no connection at all, then let the client reconnect and resend.
        await system.stop_gateway()
        await wait_until(lambda: alice.state is not ClientState.CONNECTED)
        outgoing = await alice.send("resent")
        assert [f.client_msg_id for f in alice.outbox.pending()] == [outgoing.client_msg_id]
        await system.start_gateway()
        ack = await asyncio.wait_for(outgoing.acked, 30)
        assert ack.client_msg_id == outgoing.client_msg_id
        async with system.engine.connect() as conn:
            rows = (await conn.execute(sa.select(messages.c.client_msg_id, messages.c.body))).all()
        assert [tuple(r) for r in rows] == [(outgoing.client_msg_id, "resent")]
        # Sending the same id again is a no-op on the server: the original is acknowledged.
        alice.outbox.add("resent", None, client_msg_id=outgoing.client_msg_id)
        await system.stop_gateway()
        await system.start_gateway()
        await wait_until(lambda: len(alice.outbox) == 0)
        assert await stored_count(system) == 1
        assert bodies(alice) == ["resent"]
    finally:
        await alice.close()


async def test_keeps_trying_slowly_after_the_fast_attempts_and_retry_reconnects_at_once(system: System) -> None:
    alice, events = await connected(system, await login(system, "alice"), attempts=3)
    try:
        await system.stop_gateway()
        await wait_until(lambda: alice.state is ClientState.OFFLINE and alice.next_attempt_at is not None)
        await system.start_gateway()
        alice.retry()
        await wait_until(lambda: alice.state is ClientState.CONNECTED)
    finally:
        await alice.close()


async def test_an_untrusted_certificate_is_refused(system: System, tmp_path: Path) -> None:
    ensure_dev_certs(tmp_path)  # another CA, which did not sign the server's certificate
    wrong = Endpoints.resolve(system.auth_url, system.gateway_url, tmp_path / "ca.pem")
    api = open_api(wrong)
    try:
        with pytest.raises(CertificateNotTrusted):
            await api.login("alice", PASSWORD)
    finally:
        await api.aclose()
    session = await login(system, "alice")
    with pytest.raises(CertificateNotTrusted):
        await chat_client(wrong, session).start()


async def test_a_revoked_session_ends_with_session_expired(system: System) -> None:
    session = await login(system, "alice")
    alice, events = await connected(system, session)
    api = open_api(endpoints(system))
    try:
        await api.logout(session)
        await wait_until(lambda: any(isinstance(e, SessionEnded) for e in events))
        assert alice.state is ClientState.OFFLINE
        with pytest.raises(SessionExpired):
            await chat_client(endpoints(system), session).start()
    finally:
        await api.aclose()
        await alice.close()
