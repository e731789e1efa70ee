"""Group rooms through the whole system: WebSocket clients over TLS, on the embedded default
(in-process bus + SQLite) and on RabbitMQ + MariaDB. Who sees what, live and by every read,
including a member removed while connected to another gateway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from chase import routing
from chase.schemas import MessageFrame
from services.auth.client import AuthClient
from services.gateway.server import GatewayServer
from tests.integration.system import System, TestClient

pytestmark = pytest.mark.timeout(90)


def rid() -> str:
    return uuid.uuid4().hex[:12]


async def ask(client: TestClient, **fields: object):  # noqa: ANN201
    """Send a request with a fresh request_id; its answer (its own frame or an error)."""
    request_id = rid()
    await client.send_frame(request_id=request_id, **fields)
    return await _answer(client, request_id)


async def _answer(client: TestClient, request_id: str):  # noqa: ANN202
    while True:
        frame = await client.next_frame(15)
        if getattr(frame, "request_id", None) == request_id:
            return frame


async def say(client: TestClient, body: str, room_id: int | None = None) -> str:
    cid = uuid.uuid4().hex
    await client.send_frame(type="send", client_msg_id=cid, body=body, room_id=room_id)
    return cid


async def said(client: TestClient, body: str, room_id: int | None = None) -> int:
    """Send and wait for the ack; the stored id."""
    cid = await say(client, body, room_id)
    frame = await client.expect("ack", lambda f: f.client_msg_id == cid, timeout=15)
    return frame.message_id


async def got(client: TestClient, message_id: int) -> MessageFrame:
    """The message frame with this id, whether it already arrived (before an answer that was
    waited for) or is still to come."""
    for frame in client.seen:
        if isinstance(frame, MessageFrame) and frame.message.id == message_id:
            return frame
    return await client.expect("message", lambda f: f.message.id == message_id, timeout=15)


def bodies(client: TestClient) -> list[str]:
    return [f.message.body for f in client.seen if isinstance(f, MessageFrame)]


async def marker(sender: TestClient, *receivers: TestClient) -> None:
    """A public message everyone gets: once a receiver has it, anything routed to it before
    (one queue, commit order) has arrived too."""
    body = f"marker {uuid.uuid4().hex[:6]}"
    await said(sender, body)
    for client in receivers:
        await client.expect("message", lambda f: f.message.body == body, timeout=15)


@asynccontextmanager
async def second_gateway(system: System) -> AsyncIterator[GatewayServer]:
    settings = system.gateway_settings.model_copy(
        update={"port": 0, "gateway_id": f"{system.gateway_settings.gateway_id}-2"}
    )
    async with AuthClient(system.auth_url, ca_path=system.ca_path) as auth:
        gateway = GatewayServer(settings, bus=system.bus, auth=auth)
        await gateway.start()
        try:
            yield gateway
        finally:
            await gateway.stop()


async def test_a_room_from_creation_to_messages_and_who_sees_them(system: System) -> None:
    alice, bob, carol = [await system.login(n) for n in ("alice", "bob", "carol")]
    async with system.client(alice.token) as a, system.client(bob.token) as b, system.client(carol.token) as c:
        for ws in (a, b, c):
            await ws.expect("hello")
        created = await ask(a, type="room_create", name="Project X", topic="launch")
        assert created.type == "room", created
        room = created.room
        assert (room.name, room.topic, room.role, room.owner, room.member_count) == (
            "Project X", "launch", "owner", alice.user, 1)
        event = await got(a, created.message_id)
        assert event.message.room_id == room.id and event.message.event.action == "created"

        invited = await ask(a, type="room_invite", room_id=room.id, user_id=bob.user.id)
        assert invited.type == "room"
        # Bob is told of his invitation live, though he cannot read the room yet.
        note = await got(b, invited.message_id)
        assert note.message.event.action == "invited" and note.message.event.user == bob.user
        history = await ask(b, type="history", room_id=room.id)
        assert history.type == "error" and history.code == "room_not_found"
        listed = await ask(b, type="rooms")
        assert [(r.id, r.role) for r in listed.rooms] == [(room.id, "invited")]

        joined = await ask(b, type="room_join", room_id=room.id)
        assert joined.type == "room" and joined.room.role == "member" and joined.room.member_count == 2
        await got(a, joined.message_id)

        hello_id = await said(a, "hello team", room.id)
        for ws in (a, b):
            frame = await got(ws, hello_id)
            assert frame.message.room_id == room.id and frame.message.recipient_id is None
            assert frame.message.prev_id == joined.message_id
        reply_id = await said(b, "hi alice", room.id)
        await got(a, reply_id)

        # Carol: not a member. Nothing live, and every read answers as for no room at all.
        await marker(a, c)
        assert not any(isinstance(f, MessageFrame) and f.message.room_id is not None for f in c.seen)
        for frame in (
            {"type": "history", "room_id": room.id},
            {"type": "room_members", "room_id": room.id},
            {"type": "room_join", "room_id": room.id},
            {"type": "room_invite", "room_id": room.id, "user_id": carol.user.id},
        ):
            answer = await ask(c, **frame)
            nothing = await ask(c, **{**frame, "room_id": room.id + 1000})
            assert answer.type == nothing.type == "error", (answer, nothing)
            assert (answer.code, answer.message) == (nothing.code, nothing.message) == (
                "room_not_found", "no such room, or you are not a member of it")
        cid = await say(c, "let me in", room.id)
        refusal = await c.expect("error", lambda f: f.client_msg_id == cid)
        assert refusal.code == "room_not_found"
        synced = await ask(c, type="sync", after_id=0)
        assert all(m.room_id is None for m in synced.messages)

        members = await ask(b, type="room_members", room_id=room.id)
        assert [(m.user, m.role) for m in members.members] == [(alice.user, "owner"), (bob.user, "member")]
        page = await ask(b, type="history", room_id=room.id)
        assert [m.id for m in page.messages] == [reply_id, hello_id, joined.message_id]
        assert page.room_id == room.id
        synced = await ask(b, type="sync", after_id=0)
        assert [m.id for m in synced.messages if m.room_id] == [joined.message_id, hello_id, reply_id]


async def test_removed_on_another_gateway_stops_receiving_at_once(system: System) -> None:
    alice, bob, dave = [await system.login(n) for n in ("alice", "bob", "dave")]
    async with second_gateway(system) as gateway2:
        far = f"wss://127.0.0.1:{gateway2.port}"
        async with (
            system.client(alice.token) as a,
            system.client(bob.token, url=far) as b,
            system.client(dave.token, url=far) as d,
        ):
            for ws in (a, b, d):
                await ws.expect("hello")
            room = (await ask(a, type="room_create", name="Ops", open=True)).room
            for ws in (b, d):
                assert (await ask(ws, type="room_join", room_id=room.id)).type == "room"
            before = await said(a, "before", room.id)
            for ws in (b, d):
                await got(ws, before)
            # One route for the room on the far gateway, whoever of its two members is there.
            assert routing.room_binding(room.id) in _bindings(system, gateway2)

            removed = await ask(a, type="room_remove", room_id=room.id, user_id=bob.user.id)
            assert removed.type == "room" and removed.room.member_count == 2
            event = await got(b, removed.message_id)
            assert event.message.event.action == "removed" and event.message.event.user == bob.user
            after = await said(a, "after the removal", room.id)
            await got(d, after)  # the room is still routed there
            await marker(a, b)
            assert "after the removal" not in bodies(b)

            # Nor by any read, and his sends are refused.
            page = await ask(b, type="history", room_id=room.id)
            assert after not in [m.id for m in page.messages]
            synced = await ask(b, type="sync", after_id=before)
            assert [m.id for m in synced.messages if m.room_id] == [removed.message_id]
            cid = await say(b, "wait", room.id)
            assert (await b.expect("error", lambda f: f.client_msg_id == cid)).code == "room_not_found"
            again = await ask(b, type="room_members", room_id=room.id)
            assert again.type == "error" and again.code == "room_not_found"

            # Dave leaves too: the far gateway holds no member, so it drops the room's route.
            assert (await ask(d, type="room_leave", room_id=room.id)).type == "room"
            await marker(a, d)
            assert routing.room_binding(room.id) not in _bindings(system, gateway2)


def _bindings(system: System, gateway: GatewayServer) -> set[str]:
    """The far gateway's routes for rooms (what the fan-out bound on its queue)."""
    return {routing.room_binding(room_id) for room_id in gateway.fanout._bound_rooms}


async def test_a_member_connecting_later_gets_the_room_live_and_in_sync(system: System) -> None:
    alice, bob = await system.login("alice"), await system.login("bob")
    async with system.client(alice.token) as a:
        await a.expect("hello")
        room = (await ask(a, type="room_create", name="Later", history="all")).room
        early = await said(a, "before bob", room.id)
        await ask(a, type="room_invite", room_id=room.id, user_id=bob.user.id)
        async with system.client(bob.token) as b:
            await b.expect("hello")
            joined = await ask(b, type="room_join", room_id=room.id)
            assert joined.room.history == "all"
            live = await said(a, "now", room.id)
            await got(b, live)
            page = await ask(b, type="history", room_id=room.id)
            assert early in [m.id for m in page.messages]  # a whole-history room
        # Reconnecting: the gateway learns his rooms at connect and routes them again.
        async with system.client(bob.token) as b2:
            await b2.expect("hello")
            later = await said(a, "later", room.id)
            await got(b2, later)


async def test_bad_room_frames_get_clear_errors(system: System) -> None:
    alice, bob = await system.login("alice"), await system.login("bob")
    async with system.client(alice.token) as a:
        await a.expect("hello")
        room = (await ask(a, type="room_create", name="R")).room
        cases = [
            ({"type": "room_create", "name": " "}, "room_name_invalid"),
            ({"type": "room_create", "name": "x" * 65}, "room_name_invalid"),
            ({"type": "room_create", "name": "ok", "topic": "t" * 301}, "room_topic_too_long"),
            ({"type": "room_update", "room_id": room.id}, "invalid_frame"),
            ({"type": "room_role", "room_id": room.id, "user_id": bob.user.id, "role": "king"}, "invalid_frame"),
            ({"type": "room_role", "room_id": room.id, "user_id": bob.user.id, "role": "admin"}, "not_member"),
            ({"type": "room_invite", "room_id": room.id, "user_id": 987654}, "user_unknown"),
            ({"type": "room_invite", "room_id": room.id, "user_id": alice.user.id}, "already_member"),
            ({"type": "room_leave", "room_id": room.id}, "room_owner"),
            ({"type": "room_remove", "room_id": room.id, "user_id": alice.user.id}, "room_owner"),
        ]
        for frame, code in cases:
            answer = await ask(a, **frame)
            assert answer.type == "error" and answer.code == code, (frame, answer)
        cid = uuid.uuid4().hex
        await a.send_frame(type="send", client_msg_id=cid, body="x", room_id=room.id, recipient_id=bob.user.id)
        refusal = await a.expect("error", lambda f: f.client_msg_id == cid)
        assert refusal.code == "invalid_frame" and "not both" in refusal.message
