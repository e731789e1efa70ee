"""Group rooms in the client core (no Qt): the user's rooms, unread counts, and the requests.

:class:`Rooms` sits beside a :class:`~client.core.chat.ChatClient`: it keeps the rooms the
user is in or invited to (refreshed after a membership event that concerns the user, and at
every connection), counts unread messages per room (live and synced ones from others, until
:meth:`Rooms.mark_read`), and sends the membership requests of ``docs/protocol.md`` section 9.
A room's messages are the chat client's conversation ``Room(id)``: send with
``chat.send(body, Room(id))``, page with ``chat.load_history(Room(id))``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from chase.logging import get_logger
from chase.schemas import (
    ErrorFrame,
    RoomCreateFrame,
    RoomFrame,
    RoomInfo,
    RoomInviteFrame,
    RoomJoinFrame,
    RoomLeaveFrame,
    RoomListFrame,
    RoomMember,
    RoomMemberListFrame,
    RoomMembersFrame,
    RoomRemoveFrame,
    RoomRoleFrame,
    RoomsFrame,
    RoomUpdateFrame,
)
from client.core.chat import ChatClient, RoomRequest
from client.core.conversations import Room
from client.core.errors import ClientError, ProtocolFailure
from client.core.events import ClientEvent, Connected, MessagesAdded, Source

log = get_logger(__name__)

__all__ = ["Room", "RoomRefused", "Rooms"]

#: Plain words for the server's room error codes (what a UI shows).
WORDS = {
    "room_not_found": "There is no such room, or you are not in it.",
    "room_forbidden": "Your role in this room does not allow that.",
    "room_name_invalid": "A room needs a name, and not too long a one.",
    "room_topic_too_long": "That topic is too long.",
    "room_full": "The room is full.",
    "user_unknown": "There is no such user.",
    "already_member": "They are already in the room.",
    "already_invited": "They are already invited.",
    "not_member": "They are not in the room.",
    "room_owner": "The owner has to hand the room over to someone first.",
}


class RoomRefused(ClientError):
    """The server refused a room request; ``server_code`` is its code (``WORDS`` has words)."""

    def __init__(self, server_code: str, message: str) -> None:
        super().__init__(WORDS.get(server_code, message))
        self.server_code = server_code


class Rooms:
    """The user's group rooms. Create it right after the ChatClient (before ``start``)."""

    def __init__(self, chat: ChatClient) -> None:
        self._chat = chat
        #: By id: the rooms the user is in (role owner/admin/member) or invited to ("invited").
        self.rooms: dict[int, RoomInfo] = {}
        self.unread: dict[int, int] = {}
        #: The room the user is looking at.
        self.active: int | None = None
        #: Whether a room's messages are read as they come: by default while it is active. A UI
        #: whose window can be in the background replaces it (active and the window in front).
        self.in_sight: Callable[[int], bool] = lambda room_id: room_id == self.active
        self._listeners: list[Callable[[], None]] = []
        self._refreshing: asyncio.Task[None] | None = None
        chat.subscribe(self._on_event)

    # --- what a UI reads --------------------------------------------------------------------

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` whenever the rooms or their unread counts change."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def joined(self) -> list[RoomInfo]:
        return [r for r in self.rooms.values() if r.role not in (None, "invited")]

    def invitations(self) -> list[RoomInfo]:
        return [r for r in self.rooms.values() if r.role == "invited"]

    def mark_read(self, room_id: int) -> None:
        """The room's messages have been seen: its unread count goes."""
        if self.unread.pop(room_id, 0):
            self._changed()

    # --- requests -----------------------------------------------------------------------------

    async def refresh(self) -> list[RoomInfo]:
        """Ask the server for the user's rooms and invitations."""
        reply = await self._ask(RoomsFrame(request_id=_rid()))
        assert isinstance(reply, RoomListFrame)
        self.rooms = {room.id: room for room in reply.rooms}
        for room_id in list(self.unread):
            if room_id not in self.rooms:
                del self.unread[room_id]
        self._changed()
        return reply.rooms

    async def create(self, name: str, topic: str | None = None, *, open: bool = False,  # noqa: A002
                     history: str = "joined") -> RoomInfo:
        return await self._change(RoomCreateFrame(request_id=_rid(), name=name, topic=topic or None, open=open,
                                                  history=history))

    async def invite(self, room_id: int, user_id: int) -> RoomInfo:
        return await self._change(RoomInviteFrame(request_id=_rid(), room_id=room_id, user_id=user_id))

    async def join(self, room_id: int) -> RoomInfo:
        return await self._change(RoomJoinFrame(request_id=_rid(), room_id=room_id))

    async def leave(self, room_id: int) -> RoomInfo:
        info = await self._change(RoomLeaveFrame(request_id=_rid(), room_id=room_id))
        self.rooms.pop(room_id, None)
        self.unread.pop(room_id, None)
        self._changed()
        return info

    async def remove(self, room_id: int, user_id: int) -> RoomInfo:
        return await self._change(RoomRemoveFrame(request_id=_rid(), room_id=room_id, user_id=user_id))

    async def update(self, room_id: int, *, name: str | None = None, topic: str | None = None) -> RoomInfo:
        return await self._change(RoomUpdateFrame(request_id=_rid(), room_id=room_id, name=name, topic=topic))

    async def set_role(self, room_id: int, user_id: int, role: str) -> RoomInfo:
        return await self._change(RoomRoleFrame(request_id=_rid(), room_id=room_id, user_id=user_id, role=role))

    async def members(self, room_id: int) -> list[RoomMember]:
        reply = await self._ask(RoomMembersFrame(request_id=_rid(), room_id=room_id))
        assert isinstance(reply, RoomMemberListFrame)
        return reply.members

    async def _change(self, frame: RoomRequest) -> RoomInfo:
        reply = await self._ask(frame)
        assert isinstance(reply, RoomFrame)
        if reply.room.role is None:
            self.rooms.pop(reply.room.id, None)
        else:
            self.rooms[reply.room.id] = reply.room
        self._changed()
        return reply.room

    async def _ask(self, frame: RoomRequest) -> object:
        reply = await self._chat.request(frame)
        if isinstance(reply, ErrorFrame):
            raise RoomRefused(reply.code, reply.message)
        if not isinstance(reply, RoomFrame | RoomListFrame | RoomMemberListFrame):
            raise ProtocolFailure(f"unexpected answer to {frame.type}")
        return reply

    # --- events -------------------------------------------------------------------------------

    def _on_event(self, event: ClientEvent) -> None:
        if isinstance(event, Connected):
            self._refresh_soon()
            return
        if not isinstance(event, MessagesAdded) or not isinstance(event.conversation, Room):
            return
        room_id = event.conversation.id
        me = self._chat.me.id
        if any(m.event is not None for m in event.messages):
            # Renamed, someone joined, or it concerns the user: the list is asked for again.
            self._refresh_soon()
        if event.source in (Source.LIVE, Source.SYNC) and not self.in_sight(room_id):
            # Membership events ("bob joined") are part of the timeline, not news to read.
            news = sum(1 for m in event.messages if m.sender.id != me and m.event is None)
            if news:
                self.unread[room_id] = self.unread.get(room_id, 0) + news
                self._changed()

    def _refresh_soon(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except ClientError as exc:
            log.info("client.rooms_refresh_failed", error=exc.message)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


def _rid() -> str:
    return uuid.uuid4().hex
