"""The gateway in the whole system, with real WebSocket clients over TLS.

Each test runs twice: on the embedded default (in-process bus + SQLite) and on RabbitMQ +
MariaDB. Auth, persistence and gateway all run for real (see ``tests/integration/system.py``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from chase import routing
from chase.schemas import ErrorFrame, GatewayHeartbeat, MessageFrame, UserRef
from chase.store.tables import messages
from services.auth.client import AuthClient
from services.gateway.server import GatewayServer
from tests.integration.system import System, TestClient, running_system

pytestmark = pytest.mark.timeout(60)


def cid() -> str:
    return uuid.uuid4().hex


async def send(client: TestClient, body: str, recipient_id: int | None = None) -> str:
    client_msg_id = cid()
    await client.send_frame(type="send", client_msg_id=client_msg_id, recipient_id=recipient_id, body=body)
    return client_msg_id


def is_ack_of(client_msg_id: str):  # noqa: ANN201
    return lambda f: f.client_msg_id == client_msg_id


def has_body(body: str):  # noqa: ANN201
    return lambda f: f.message.body == body


async def count_messages(system: System) -> int:
    async with system.engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar_one()


async def test_public_and_private_messages_reach_exactly_who_may_see_them(system: System) -> None:
    alice, bob, carol = [await system.login(n) for n in ("alice", "bob", "carol")]
    async with (
        system.client(alice.token) as a1,
        system.client(alice.token) as a2,
        system.client(bob.token) as b,
        system.client(carol.token) as c,
    ):
        for ws in (a1, a2, b, c):
            await ws.expect("hello")

        public = await send(a1, "hello everyone 👋")
        ack = await a1.expect("ack", is_ack_of(public))
        assert not ack.duplicate
        for ws in (a1, a2, b, c):
            frame = await ws.expect("message", has_body("hello everyone 👋"))
            assert frame.message.id == ack.message_id
            assert frame.message.sender == alice.user
            assert frame.message.recipient_id is None

        private = await send(a1, "psst bob, שלום", recipient_id=bob.user.id)
        private_ack = await a1.expect("ack", is_ack_of(private))
        for ws in (a1, a2, b):
            frame = await ws.expect("message", has_body("psst bob, שלום"))
            assert frame.message.id == private_ack.message_id
            assert frame.message.recipient_id == bob.user.id

        # A public marker after the private message: once carol has it, she would have had
        # the private one before it (one queue, commit order), and she has not.
        marker = await send(b, "marker")
        await c.expect("message", has_body("marker"))
        assert all(
            not (isinstance(f, MessageFrame) and f.message.recipient_id is not None) for f in c.seen
        )

        # Carol cannot fetch it by any request.
        await c.send_frame(type="history", request_id="h-alice", with_user_id=alice.user.id)
        page = await c.expect("history_page", lambda f: f.request_id == "h-alice")
        assert page.messages == []
        await c.send_frame(type="history", request_id="h-bob", with_user_id=bob.user.id)
        assert (await c.expect("history_page", lambda f: f.request_id == "h-bob")).messages == []
        await c.send_frame(type="sync", request_id="s", after_id=0)
        synced = await c.expect("sync_page", lambda f: f.request_id == "s")
        assert [m.body for m in synced.messages] == ["hello everyone 👋", "marker"]
        await c.send_frame(type="history", request_id="h-pub")
        public_page = await c.expect("history_page", lambda f: f.request_id == "h-pub")
        assert [m.body for m in public_page.messages] == ["marker", "hello everyone 👋"]
        # Bob, on the other hand, sees the conversation with alice.
        await b.send_frame(type="history", request_id="hb", with_user_id=alice.user.id)
        bob_page = await b.expect("history_page", lambda f: f.request_id == "hb")
        assert [m.id for m in bob_page.messages] == [private_ack.message_id]
        assert marker  # sent by bob, echoed above


async def test_resend_is_acknowledged_with_the_original_id(system: System) -> None:
    alice, bob = await system.login("alice"), await system.login("bob")
    async with system.client(alice.token) as a, system.client(bob.token) as b:
        await a.expect("hello")
        await b.expect("hello")
        await a.send_frame(type="send", client_msg_id="resend-1", body="once only")
        first = await a.expect("ack", is_ack_of("resend-1"))
        await b.expect("message", has_body("once only"))
        await a.send_frame(type="send", client_msg_id="resend-1", body="once only")
        again = await a.expect("ack", is_ack_of("resend-1"))
        assert again.duplicate
        assert (again.message_id, again.created_at) == (first.message_id, first.created_at)
        # Nothing new stored; bob may be shown the same message again, always under the same id.
        assert await count_messages(system) == 1
        await send(a, "after")
        await b.expect("message", has_body("after"))
        seen = {(f.message.id, f.message.body) for f in b.seen if isinstance(f, MessageFrame)}
        assert seen == {(first.message_id, "once only"), (seen_id(b, "after"), "after")}


async def test_reconnecting_client_syncs_exactly_what_it_missed(system: System) -> None:
    alice, bob = await system.login("alice"), await system.login("bob")
    async with system.client(alice.token) as a:
        await a.expect("hello")
        async with system.client(bob.token) as b:
            await b.expect("hello")
            await send(a, "before")
            last_seen = (await b.expect("message", has_body("before"))).message.id
        missed = ["missed public", "missed private"]
        await send(a, missed[0])
        await a.expect("ack")
        await send(a, missed[1], recipient_id=bob.user.id)
        await a.expect("ack", lambda f: True)
        async with system.client(bob.token) as b:
            await b.expect("hello")
            await b.send_frame(type="sync", request_id="catch-up", after_id=last_seen)
            page = await b.expect("sync_page")
            assert [m.body for m in page.messages] == missed
            assert not page.has_more


async def test_every_bad_input_gets_its_error_and_the_connection_stays_up(system: System) -> None:
    alice = await system.login("alice")
    limits = system.gateway_settings
    async with system.client(alice.token) as a:
        await a.expect("hello")
        cases = [
            ("{oops", "invalid_frame"),
            ('{"type": "shout"}', "unknown_type"),
            ('{"type": "send", "client_msg_id": "m1"}', "invalid_frame"),
            ('{"type": "send", "client_msg_id": "m2", "body": "x", "sender": {"id": 99, "username": "eve"}}',
             "invalid_frame"),
            ('{"type": "send", "client_msg_id": "m3", "body": "   "}', "body_empty"),
            ('{"type": "send", "client_msg_id": "m4", "body": "%s"}' % ("x" * (limits.max_body_chars + 1)),
             "body_too_long"),
            ('{"type": "send", "client_msg_id": "m5", "body": "%s"}' % ("x" * limits.max_frame_bytes),
             "frame_too_large"),
            ('{"type": "history", "with_user_id": 1, "limit": 5000}', "invalid_frame"),
            (b"\xff\x00 binary", "invalid_frame"),
        ]
        for data, code in cases:
            await a.send(data)
            error = await a.expect("error")
            assert error.code == code, (data[:60], error)
            await a.send_frame(type="ping", request_id="alive")
            await a.expect("pong", lambda f: f.request_id == "alive")

        await a.send_frame(type="send", client_msg_id="to-nobody", recipient_id=999_999, body="hello?")
        error = await a.expect("error", lambda f: f.client_msg_id == "to-nobody")
        assert error.code == "recipient_unknown"
        assert await count_messages(system) == 0

        # A flood: every frame is answered, with a pong or (past the burst) rate_limited,
        # and the connection is still up afterwards.
        flood = 2 * limits.rate_burst
        for _ in range(flood):
            await a.send_frame(type="ping")
        pongs = limited = 0
        while pongs + limited < flood:
            frame = await a.next_frame()
            if frame.type == "pong":
                pongs += 1
            elif frame.type == "error":
                assert (frame.code, frame.retryable) == ("rate_limited", True)
                limited += 1
        assert pongs >= 1 and limited >= 1
        await a.ws.ping()  # a protocol-level ping: not rate limited, proves the socket is open
        assert a.ws.close_code is None


async def test_tokens_are_checked_and_logout_closes_the_session(system: System) -> None:
    for token in (None, "not-a-real-token"):
        async with system.client(token) as ws:
            assert await ws.closed() == (4401, "invalid or expired token")
    alice = await system.login("alice")
    other_session = await system.login("alice", register=False)
    async with system.client(alice.token) as a, system.client(other_session.token) as other:
        await a.expect("hello")
        await other.expect("hello")
        await system.auth.logout(alice.token)
        assert await a.closed() == (4401, "session revoked")
        # Only that session: alice's other login is still served.
        await other.send_frame(type="ping", request_id="still-here")
        await other.expect("pong")
    async with system.client(alice.token) as ws:
        assert (await ws.closed())[0] == 4401


async def test_presence_is_seen_by_others(system: System) -> None:
    alice, bob = await system.login("alice"), await system.login("bob")
    async with system.client(alice.token) as a:
        hello = await a.expect("hello")
        assert hello.online_user_ids == [alice.user.id]
        async with system.client(bob.token) as b:
            assert set((await b.expect("hello")).online_user_ids) == {alice.user.id, bob.user.id}
            frame = await a.expect("presence", lambda f: bob.user in f.online)
            assert [u.username for u in frame.online if u.id == bob.user.id] == ["bob"]
        frame = await a.expect("presence", lambda f: bob.user in f.offline)
        assert bob.user not in frame.online


async def test_two_gateways_fan_out_to_each_other_and_a_dead_one_expires(system: System) -> None:
    alice, bob = await system.login("alice"), await system.login("bob")
    second = system.gateway_settings.model_copy(update={"port": 0, "gateway_id": f"{system.gateway_settings.gateway_id}-2"})
    async with AuthClient(system.auth_url, ca_path=system.ca_path) as auth:
        gateway = GatewayServer(second, bus=system.bus, auth=auth)
        await gateway.start()
        try:
            async with (
                system.client(alice.token) as a,
                system.client(bob.token, url=f"wss://127.0.0.1:{gateway.port}") as b,
            ):
                hello = await a.expect("hello")
                await b.expect("hello")
                # Bob is online for alice: in her hello if his gateway's news came first,
                # else in a presence frame after it.
                if bob.user.id not in hello.online_user_ids:
                    await a.expect("presence", lambda f: bob.user in f.online)
                private = await send(a, "across gateways", recipient_id=bob.user.id)
                await a.expect("ack", is_ack_of(private))
                await b.expect("message", has_body("across gateways"))

                # A gateway that stops beating: its users go offline for everyone.
                ghost = UserRef(id=10_000, username="ghost")
                beat = GatewayHeartbeat(gateway_id="gw-ghost", users=[ghost], sent_at=datetime.now(UTC), ttl_seconds=1)
                await system.bus.publish(routing.presence("gw-ghost"), beat)
                for ws in (a, b):
                    await ws.expect("presence", lambda f: ghost in f.online)
                    await ws.expect("presence", lambda f: ghost in f.offline)
        finally:
            await gateway.stop()


async def test_a_stopped_bus_makes_sends_fail_and_never_ack(system: System) -> None:
    alice = await system.login("alice")
    async with system.client(alice.token) as a:
        await a.expect("hello")
        await system.bus.close()
        client_msg_id = await send(a, "into the void")
        error = await a.expect("error", is_ack_of(client_msg_id))
        assert isinstance(error, ErrorFrame)
        assert (error.code, error.retryable) == ("unavailable", True)
        await a.send_frame(type="ping", request_id="after")
        await a.expect("pong", lambda f: f.request_id == "after")
        assert not any(f.type == "ack" for f in a.seen)
    assert await count_messages(system) == 0


async def test_sends_of_many_connections_at_once_keep_each_senders_order(system: System) -> None:
    # Every client sends its frames without waiting for acks: the gateway publishes the sends
    # of all connections that arrive together as one event, each connection's next one only
    # after its previous one is confirmed.
    logins = [await system.login(name) for name in ("alice", "bob", "carol")]
    async with (
        system.client(logins[0].token) as a, system.client(logins[1].token) as b, system.client(logins[2].token) as c,
    ):
        clients = (a, b, c)
        for ws in clients:
            await ws.expect("hello")
        sent: dict[int, list[str]] = {login.user.id: [] for login in logins}
        for i in range(15):
            for login, ws in zip(logins, clients, strict=True):
                sent[login.user.id].append(await send(ws, f"{login.user.username} {i}"))
        for login, ws in zip(logins, clients, strict=True):
            for client_msg_id in sent[login.user.id]:
                await ws.expect("ack", is_ack_of(client_msg_id))
    async with system.engine.connect() as conn:
        rows = (await conn.execute(sa.select(messages.c.sender_id, messages.c.client_msg_id)
                                   .order_by(messages.c.id))).all()
    assert len(rows) == 45
    for sender_id, client_msg_ids in sent.items():
        assert [cmid for sid, cmid in rows if sid == sender_id] == client_msg_ids


async def test_a_refused_publish_answers_each_send_with_its_own_error(system: System) -> None:
    logins = [await system.login(name) for name in ("alice", "bob", "carol")]
    async with (
        system.client(logins[0].token) as a, system.client(logins[1].token) as b, system.client(logins[2].token) as c,
    ):
        clients = (a, b, c)
        for ws in clients:
            await ws.expect("hello")
        await system.bus.close()
        sent = [await send(ws, "refused") for ws in clients]
        for ws, client_msg_id in zip(clients, sent, strict=True):
            error = await ws.expect("error")
            assert isinstance(error, ErrorFrame)
            assert (error.code, error.client_msg_id, error.retryable) == ("unavailable", client_msg_id, True)
            assert not any(f.type == "ack" for f in ws.seen)
    assert await count_messages(system) == 0


async def test_gateway_shutdown_closes_clients_with_going_away(dev_certs: Path, sqlite_url: str) -> None:
    async with running_system(sqlite_url, certs_dir=dev_certs) as running:
        alice = await running.login("alice")
        async with running.client(alice.token) as a:
            await a.expect("hello")
            gateway = running._tasks[-1]
            gateway.cancel()
            assert await a.closed() == (1001, "gateway shutting down")


def seen_id(client, body: str) -> int:  # noqa: ANN001
    return next(f.message.id for f in client.seen if isinstance(f, MessageFrame) and f.message.body == body)


async def test_the_gateway_declines_compression_a_client_offers(system: System) -> None:
    # websockets' clients (ChaSe's own among them) offer permessage-deflate; accepted, it would
    # give every connection zlib streams of its own and deflate each fanned-out frame once per
    # connection. Declined, the client goes on uncompressed.
    alice = await system.login("alice")
    async with system.client(alice.token) as ws:
        await ws.expect("hello")
        assert "permessage-deflate" in (ws.ws.request.headers.get("Sec-WebSocket-Extensions") or "")
        assert ws.ws.response.headers.get("Sec-WebSocket-Extensions") is None
        await ws.send_frame(type="ping", request_id="uncompressed")
        await ws.expect("pong")
