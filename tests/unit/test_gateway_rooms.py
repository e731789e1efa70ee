"""Group rooms in the gateway, sans-I/O: the membership table and the session's room frames."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from chase import routing
from chase.clock import FakeClock
from chase.schemas import (
    ChatMessage,
    ErrorFrame,
    Limits,
    MessageFrame,
    MessagePage,
    MessageStored,
    RoomCommand,
    RoomCommandResult,
    RoomEvent,
    RoomFrame,
    RoomInfo,
    RoomList,
    RoomListFrame,
    RoomsQuery,
    UserRef,
)
from services.gateway.errors import ErrorCode
from services.gateway.rooms import RoomDirectory
from services.gateway.session import ConnectionSession, Publish, Query, Send

ALICE = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")
LIMITS = Limits(max_body_chars=100, max_frame_bytes=3000, rate_per_second=100, rate_burst=100)
ROOM = 5


class Tokens:
    def __init__(self) -> None:
        self.n = 0

    def token(self, nbytes: int) -> str:
        self.n += 1
        return f"t{self.n}"


def message(mid: int, sender: UserRef = ALICE, *, room: int = ROOM, event: RoomEvent | None = None) -> ChatMessage:
    return ChatMessage(
        id=mid, sender=sender, recipient_id=None, body="x", created_at=datetime(2026, 1, 1, tzinfo=UTC),
        client_msg_id=f"c{mid}", room_id=room, event=event,
    )


def joined(mid: int, user: UserRef) -> ChatMessage:
    return message(mid, user, event=RoomEvent(action="joined", user=user))


def removed(mid: int, user: UserRef) -> ChatMessage:
    return message(mid, ALICE, event=RoomEvent(action="removed", user=user))


def session(directory: RoomDirectory, user: UserRef = BOB) -> ConnectionSession:
    return ConnectionSession(user, "s", LIMITS, FakeClock(), rooms=directory, tokens=Tokens())


def frames(actions: list) -> list:
    return [a.frame for a in actions if isinstance(a, Send)]


def test_membership_follows_events_and_reports_rooms_to_bind() -> None:
    rooms = RoomDirectory()
    load = rooms.begin_load(BOB.id)
    assert rooms.finish_load(BOB.id, load, [], as_of=0) == frozenset()
    assert rooms.on_event(joined(10, BOB), {BOB.id}) == {ROOM}
    assert rooms.is_member(BOB.id, ROOM) and rooms.rooms() == {ROOM}
    assert rooms.on_event(joined(10, BOB), {BOB.id}) == frozenset()  # a redelivery changes nothing
    assert rooms.on_event(joined(11, ALICE), {BOB.id}) == frozenset()  # not connected here
    assert rooms.on_event(removed(12, BOB), {BOB.id}) == {ROOM}
    assert not rooms.is_member(BOB.id, ROOM) and rooms.rooms() == frozenset()


def test_events_during_the_room_list_fetch_are_not_lost() -> None:
    rooms = RoomDirectory()
    load = rooms.begin_load(BOB.id)
    # Removed from room 5 (id 20) and added to room 6 (id 21) while his list was read at id 19.
    rooms.on_event(removed(20, BOB), {BOB.id})
    rooms.on_event(message(21, BOB, room=6, event=RoomEvent(action="joined", user=BOB)), {BOB.id})
    # An event older than the list is in the list already, and not applied twice.
    rooms.on_event(message(15, BOB, room=7, event=RoomEvent(action="left", user=BOB)), {BOB.id})
    changed = rooms.finish_load(BOB.id, load, [ROOM, 7], as_of=19)
    assert rooms.rooms_of(BOB.id) == {6, 7} and changed == {6, 7}
    assert rooms.forget(BOB.id) == {6, 7} and rooms.rooms() == frozenset()


def test_a_known_list_is_kept_current_until_forgotten_and_late_lists_change_nothing() -> None:
    rooms = RoomDirectory()
    first = rooms.begin_load(BOB.id)
    assert rooms.begin_load(BOB.id) == first  # asking again joins the load awaited
    assert rooms.finish_load(BOB.id, first, [], as_of=10) == frozenset()
    assert rooms.knows(BOB.id) and rooms.rooms_of(BOB.id) == frozenset()
    # Known with no rooms, and not connected: his events are still followed (he lingers).
    assert rooms.on_event(joined(11, BOB)) == {ROOM}
    assert rooms.is_member(BOB.id, ROOM)
    # A second answer to the finished load is older than what is known: ignored.
    assert rooms.finish_load(BOB.id, first, [], as_of=5) == frozenset()
    assert rooms.is_member(BOB.id, ROOM)
    assert rooms.forget(BOB.id) == {ROOM} and not rooms.knows(BOB.id)
    assert rooms.on_event(joined(12, BOB)) == frozenset()  # forgotten: no longer followed
    # A list asked for before the forget, answered after a new load began: not the new load's.
    second = rooms.begin_load(BOB.id)
    assert second != first
    assert rooms.finish_load(BOB.id, first, [ROOM], as_of=12) == frozenset()
    assert rooms.is_loading(BOB.id, second) and not rooms.knows(BOB.id)
    assert rooms.finish_load(BOB.id, second, [ROOM], as_of=12) == {ROOM}


def test_room_messages_reach_members_and_the_user_an_event_is_about() -> None:
    rooms = RoomDirectory()
    bob = session(rooms)
    assert frames(bob.on_event(MessageStored(message=message(30)))) == []  # not a member
    invite = message(31, event=RoomEvent(action="invited", user=BOB))
    assert [f.message.id for f in frames(bob.on_event(MessageStored(message=invite)))] == [31]
    rooms.on_event(joined(32, BOB), {BOB.id})
    assert [f.message.id for f in frames(bob.on_event(MessageStored(message=message(33))))] == [33]
    gone = removed(34, BOB)
    rooms.on_event(gone, {BOB.id})
    assert [f.message.id for f in frames(bob.on_event(MessageStored(message=gone)))] == [34]
    assert frames(bob.on_event(MessageStored(message=message(35)))) == []


def test_room_sends_are_refused_at_once_for_non_members() -> None:
    rooms = RoomDirectory()
    bob = session(rooms)
    send = json.dumps({"type": "send", "client_msg_id": "m1", "body": "hi", "room_id": ROOM})
    [error] = frames(bob.receive_text(send))
    assert isinstance(error, ErrorFrame) and error.code == ErrorCode.ROOM_NOT_FOUND
    rooms.on_event(joined(1, BOB), {BOB.id})
    [publish] = bob.receive_text(send)
    assert isinstance(publish, Publish) and publish.event.room_id == ROOM
    assert publish.routing_key == routing.MESSAGE_SUBMITTED


def test_membership_requests_are_commands_answered_by_request_id() -> None:
    bob = session(RoomDirectory())
    [publish] = bob.receive_text(json.dumps({"type": "room_join", "room_id": ROOM, "request_id": "r1"}))
    assert isinstance(publish, Publish) and publish.routing_key == routing.ROOM_COMMAND
    command = publish.event
    assert isinstance(command, RoomCommand) and (command.op, command.actor, command.room_id) == ("join", BOB, ROOM)
    info = RoomInfo(id=ROOM, name="R", owner=ALICE, open=True, history="joined", member_count=2, role="member")
    # Someone else's answer, or an unknown command, changes nothing.
    assert bob.on_event(RoomCommandResult(command_id=command.command_id, actor_id=ALICE.id, room=info, message_id=9)) == []
    [answer] = frames(bob.on_event(
        RoomCommandResult(command_id=command.command_id, actor_id=BOB.id, room=info, message_id=9)))
    assert isinstance(answer, RoomFrame) and answer.request_id == "r1" and answer.room == info
    [publish] = bob.receive_text(json.dumps({"type": "room_leave", "room_id": ROOM, "request_id": "r2"}))
    [refusal] = frames(bob.on_event(RoomCommandResult(
        command_id=publish.event.command_id, actor_id=BOB.id, code="room_owner", reason="hand over first")))
    assert isinstance(refusal, ErrorFrame) and (refusal.code, refusal.request_id) == (ErrorCode.ROOM_OWNER, "r2")
    # A broker that does not take the command: answered by request id, nothing pending.
    [publish] = bob.receive_text(json.dumps({"type": "room_create", "name": "N", "request_id": "r3"}))
    [failed] = frames(bob.publish_failed(publish.client_msg_id))
    assert failed.code == ErrorCode.UNAVAILABLE and failed.request_id == "r3" and failed.retryable


def test_room_list_and_history_pages() -> None:
    bob = session(RoomDirectory())
    [query] = bob.receive_text(json.dumps({"type": "rooms", "request_id": "q"}))
    assert isinstance(query, Query) and query.request == RoomsQuery(viewer_id=BOB.id)
    [page] = frames(bob.query_replied(query, RoomList(rooms=[], as_of=0)))
    assert isinstance(page, RoomListFrame) and page.request_id == "q"
    [query] = bob.receive_text(json.dumps({"type": "history", "room_id": ROOM}))
    assert query.request.room_id == ROOM
    # Only messages of the room asked for make it into its page.
    reply = MessagePage(messages=[message(3), message(2, room=6)], has_more=False)
    [page] = frames(bob.query_replied(query, reply))
    assert [m.id for m in page.messages] == [3] and page.room_id == ROOM
    assert not any(isinstance(f, MessageFrame) for f in frames(bob.query_replied(query, reply)))


def test_a_send_stored_after_its_sender_was_removed_is_still_acked_but_not_shown() -> None:
    rooms = RoomDirectory()
    rooms.on_event(joined(1, BOB), {BOB.id})
    bob = session(rooms)
    [publish] = bob.receive_text(json.dumps({"type": "send", "client_msg_id": "m9", "body": "hi", "room_id": ROOM}))
    rooms.on_event(removed(2, BOB), {BOB.id})
    stored = ChatMessage(id=3, sender=BOB, recipient_id=None, body="hi", created_at=datetime(2026, 1, 1, tzinfo=UTC),
                         client_msg_id="m9", room_id=ROOM)
    answers = frames(bob.on_event(MessageStored(message=stored)))
    assert [type(f).__name__ for f in answers] == ["AckFrame"]
    assert bob.pending == frozenset()
