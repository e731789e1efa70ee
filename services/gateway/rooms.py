"""Which local users are in which group rooms: the gateway's routing table for rooms, sans-I/O.

A gateway binds ``routing.room_binding(r)`` on its queue while it holds at least one member
of room ``r`` (one route per room per gateway, whatever the number of members connected), and
unbinds it when the last one leaves or disconnects. :class:`RoomDirectory` keeps the table;
the fan-out does the binding (``FanOut.settle_rooms``).

How it stays right:

- When a user's first connection arrives, the gateway binds the user's keys (among them
  ``#.<u>.#``, which matches the user's membership events) *before* it asks the
  history service for the user's rooms (:class:`~chase.schemas.RoomList`, read with ``as_of``,
  the largest message id then). Membership events of that user that arrive meanwhile are kept
  (:meth:`RoomDirectory.begin_load`) and those newer than ``as_of`` are applied on top of the
  list (:meth:`RoomDirectory.finish_load`), so neither a join nor a removal is lost between
  the two.
- Membership events reach every gateway bound to the room *and* every gateway holding the
  user they concern, in the order they were stored with the room's messages. A removal is
  applied before anything after it is routed: the removed user's connections on every
  gateway stop receiving the room at once.
- A join that makes the gateway bind a new room may race messages stored right after it
  (published before the binding existed): the joining user's connections are told to sync
  (``resync``) once the binding is made.
- A user's list is kept as long as their user binding (``FanOut``'s ``unbind_after``): their
  membership events keep arriving through it after their last connection closed, so a user
  back within that time needs no new list (:meth:`RoomDirectory.knows`). It is forgotten with
  the binding, and when the gateway's queue is re-established (events may have been lost).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from datetime import datetime

from chase.schemas import (
    ChatMessage,
    RoomCommand,
    RoomCreateFrame,
    RoomInviteFrame,
    RoomJoinFrame,
    RoomLeaveFrame,
    RoomRemoveFrame,
    RoomRequestFrame,
    RoomRoleFrame,
    RoomUpdateFrame,
    UserRef,
)

#: Membership events that make their user a member, and those that end it.
_JOINS = frozenset({"created", "joined"})
_ENDS = frozenset({"left", "removed"})


def concerned_user(message: ChatMessage) -> int | None:
    """The user a membership event is about (the creator for "created"); None for a message."""
    event = message.event
    if event is None:
        return None
    return event.user.id if event.user is not None else message.sender.id


def room_command(frame: RoomRequestFrame, actor: UserRef, command_id: str, now: datetime) -> RoomCommand:
    """The bus command for a client's membership frame; the actor is who logged in."""
    fields: dict[str, object]
    match frame:
        case RoomCreateFrame():
            fields = {"op": "create", "name": frame.name, "topic": frame.topic, "open": frame.open,
                      "history": frame.history}
        case RoomInviteFrame():
            fields = {"op": "invite", "room_id": frame.room_id, "user_id": frame.user_id}
        case RoomJoinFrame():
            fields = {"op": "join", "room_id": frame.room_id}
        case RoomLeaveFrame():
            fields = {"op": "leave", "room_id": frame.room_id}
        case RoomRemoveFrame():
            fields = {"op": "remove", "room_id": frame.room_id, "user_id": frame.user_id}
        case RoomUpdateFrame():
            fields = {"op": "update", "room_id": frame.room_id, "name": frame.name, "topic": frame.topic}
        case RoomRoleFrame():
            fields = {"op": "role", "room_id": frame.room_id, "user_id": frame.user_id, "role": frame.role}
    return RoomCommand(command_id=command_id, actor=actor, submitted_at=now, **fields)


class RoomDirectory:
    """Room memberships of the users connected to this gateway. Not thread-safe."""

    def __init__(self) -> None:
        self._rooms_of: dict[int, set[int]] = {}
        self._members: dict[int, set[int]] = {}
        #: Users whose room list is known and kept current by their events (maybe no rooms).
        self._known: set[int] = set()
        #: Users whose room list is being fetched: the load's number, and their membership
        #: events meanwhile (id, room, joined?).
        self._loading: dict[int, tuple[int, list[tuple[int, int, bool]]]] = {}
        self._loads = 0

    # --- queries ------------------------------------------------------------------------------

    def is_member(self, user_id: int, room_id: int) -> bool:
        return room_id in self._rooms_of.get(user_id, ())

    def local_members(self, room_id: int) -> frozenset[int]:
        return frozenset(self._members.get(room_id, ()))

    def rooms(self) -> frozenset[int]:
        """Rooms with at least one local member: the rooms this gateway must be bound to."""
        return frozenset(self._members)

    def rooms_of(self, user_id: int) -> frozenset[int]:
        return frozenset(self._rooms_of.get(user_id, ()))

    def knows(self, user_id: int) -> bool:
        """The user's room list is here and current: no need to ask for it."""
        return user_id in self._known

    def is_loading(self, user_id: int, load: int) -> bool:
        """Load number ``load`` of the user's list is still awaited."""
        current = self._loading.get(user_id)
        return current is not None and current[0] == load

    def may_see(self, user_id: int, message: ChatMessage) -> bool:
        """A room message goes to its members; a membership event also to the user it is
        about (the invited, the removed), who may not be a member."""
        assert message.room_id is not None
        return self.is_member(user_id, message.room_id) or concerned_user(message) == user_id

    # --- changes ------------------------------------------------------------------------------

    def begin_load(self, user_id: int) -> int:
        """The user's room list is being fetched: keep their membership events until it comes.
        Returns the load's number for :meth:`finish_load`; while one is awaited, asking again
        joins it (the first list to come back is used)."""
        current = self._loading.get(user_id)
        if current is None:
            self._loads += 1
            current = self._loading[user_id] = (self._loads, [])
        return current[0]

    def finish_load(self, user_id: int, load: int, room_ids: Iterable[int], as_of: int) -> frozenset[int]:
        """The user's rooms as of message id ``as_of``, plus the events kept since; returns the
        rooms whose local membership changed (their bindings may need to change).

        A list for a load that is no longer awaited (another list came first, or the user was
        forgotten meanwhile) changes nothing: it may be older than what is known."""
        if not self.is_loading(user_id, load):
            return frozenset()
        _, kept = self._loading.pop(user_id)
        before = self.rooms_of(user_id)
        rooms = set(room_ids)
        for event_id, room_id, joined in kept:
            if event_id > as_of:
                (rooms.add if joined else rooms.discard)(room_id)
        for room_id in before - rooms:
            self._leave(user_id, room_id)
        for room_id in rooms - before:
            self._join(user_id, room_id)
        self._known.add(user_id)
        return frozenset(before ^ rooms)

    def forget(self, user_id: int) -> frozenset[int]:
        """Stop tracking the user (their binding is gone); returns the rooms they were in."""
        self._loading.pop(user_id, None)
        self._known.discard(user_id)
        rooms = self.rooms_of(user_id)
        for room_id in rooms:
            self._leave(user_id, room_id)
        return rooms

    def on_event(self, message: ChatMessage, local_users: Container[int] = ()) -> frozenset[int]:
        """Apply a membership event; returns the rooms whose local membership changed.

        Only users tracked here are (``local_users``, plus anyone whose list is known or being
        loaded); events about others change nothing.
        """
        user_id = concerned_user(message)
        room_id = message.room_id
        if user_id is None or room_id is None or message.event is None:
            return frozenset()
        action = message.event.action
        if action not in _JOINS and action not in _ENDS:
            return frozenset()
        joined = action in _JOINS
        if user_id in self._loading:
            self._loading[user_id][1].append((message.id, room_id, joined))
            return frozenset()
        if user_id not in self._known and user_id not in self._rooms_of and user_id not in local_users:
            return frozenset()
        if joined and not self.is_member(user_id, room_id):
            self._join(user_id, room_id)
            return frozenset({room_id})
        if not joined and self.is_member(user_id, room_id):
            self._leave(user_id, room_id)
            return frozenset({room_id})
        return frozenset()

    def _join(self, user_id: int, room_id: int) -> None:
        self._rooms_of.setdefault(user_id, set()).add(room_id)
        self._members.setdefault(room_id, set()).add(user_id)

    def _leave(self, user_id: int, room_id: int) -> None:
        rooms = self._rooms_of.get(user_id)
        if rooms is not None:
            rooms.discard(room_id)
            if not rooms:
                del self._rooms_of[user_id]
        members = self._members.get(room_id)
        if members is not None:
            members.discard(user_id)
            if not members:
                del self._members[room_id]
