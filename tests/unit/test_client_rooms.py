"""The client core's rooms (no network): unread counts, refreshes, refusals in plain words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chase.schemas import (
    ChatMessage,
    ErrorFrame,
    RoomEvent,
    RoomFrame,
    RoomInfo,
    RoomListFrame,
    UserRef,
)
from client.core.conversations import Room, conversation_of
from client.core.events import MessagesAdded, Source
from client.core.rooms import RoomRefused, Rooms

ME = UserRef(id=1, username="me")
BOB = UserRef(id=2, username="bob")
INFO = RoomInfo(id=7, name="R", owner=BOB, open=False, history="joined", member_count=2, role="member")


class FakeChat:
    """What Rooms needs of a ChatClient: who I am, events, and request/answer."""

    def __init__(self) -> None:
        self.me = ME
        self.listeners: list = []
        self.answers: list = []
        self.sent: list = []

    def subscribe(self, listener):  # noqa: ANN001, ANN201
        self.listeners.append(listener)
        return lambda: None

    async def request(self, frame):  # noqa: ANN001, ANN201
        self.sent.append(frame)
        answer = self.answers.pop(0)
        return answer.model_copy(update={"request_id": frame.request_id})

    def emit(self, event) -> None:  # noqa: ANN001
        for listener in self.listeners:
            listener(event)


def msg(mid: int, sender: UserRef = BOB, event: RoomEvent | None = None) -> ChatMessage:
    return ChatMessage(id=mid, sender=sender, recipient_id=None, body="x", created_at=datetime(2026, 1, 1, tzinfo=UTC),
                       client_msg_id=f"c{mid}", room_id=7, event=event)


def test_room_messages_are_their_own_conversation() -> None:
    assert conversation_of(msg(1), ME.id) == Room(7)


async def test_unread_counts_and_refusals() -> None:
    chat = FakeChat()
    rooms = Rooms(chat)  # type: ignore[arg-type]
    changes: list[int] = []
    rooms.subscribe(lambda: changes.append(1))
    chat.answers.append(RoomListFrame(rooms=[INFO]))
    await rooms.refresh()
    assert [r.id for r in rooms.joined()] == [7] and rooms.invitations() == []
    chat.emit(MessagesAdded(Room(7), [msg(1), msg(2), msg(3, ME)], Source.LIVE))
    assert rooms.unread == {7: 2}
    chat.emit(MessagesAdded(Room(7), [msg(4)], Source.HISTORY))  # a history page is not news
    rooms.mark_read(7)
    rooms.active = 7
    chat.emit(MessagesAdded(Room(7), [msg(5)], Source.LIVE))  # the open room is read as it comes
    assert rooms.unread == {} and changes
    chat.answers.append(ErrorFrame(code="room_owner", message="the owner cannot leave"))
    with pytest.raises(RoomRefused) as refused:
        await rooms.leave(7)
    assert refused.value.server_code == "room_owner" and "hand the room over" in refused.value.message
    chat.answers.append(RoomFrame(room=INFO.model_copy(update={"name": "New"}), message_id=9))
    assert (await rooms.update(7, name="New")).name == "New" and rooms.rooms[7].name == "New"
