"""Membership changes of group rooms, each stored as an event in the room's conversation.

A :class:`~chase.schemas.RoomCommand` arrives on the persistence worker's own queue, so it is
applied by the one writer, under the writer lease, in order with messages: the event it
stores ("alice added bob") gets the next message id and its ``prev_id`` like any message, and
the membership rows change in the same transaction. What a member reads is therefore exactly
what the membership was when each message was stored.

Rules (error codes in :class:`~services.persistence.errors.RoomErrorCode`):

=========  =====================================  ==========================================
op         who may                                refused with
=========  =====================================  ==========================================
create     anyone                                 room_name_invalid, room_topic_too_long
invite     any member                             user_unknown, already_member, already_invited
join       the invited, or anyone if room open    room_full, already_member
leave      a member (declines an invitation too)  room_owner (the owner hands over first)
remove     admins and the owner; an admin only    not_member, room_owner, room_forbidden
           by the owner
update     the owner (name and/or topic)          room_forbidden, room_name_invalid, ...
role       the owner; "owner" hands it over and   not_member, room_owner, room_forbidden
           the old owner becomes an admin
=========  =====================================  ==========================================

Anything about a room the actor is not a member of (or that does not exist) is
``room_not_found``. A command whose ``command_id`` was stored before (a redelivery) stores
nothing and answers as the first time did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chase import routing
from chase.schemas import (
    ChatMessage,
    Event,
    MessageStored,
    RoomCommand,
    RoomCommandResult,
    RoomEvent,
    RoomInfo,
    UserRef,
)
from chase.store.tables import messages, room_conversation, room_members, rooms
from chase.text import is_blank
from services.persistence.errors import RoomErrorCode
from services.persistence.rooms import (
    INVITED,
    JOINED,
    LEFT,
    RoomError,
    RoomLimits,
    membership_txn,
    not_found,
    room_info_txn,
)
from services.persistence.store import MessageStore, _aware_utc, last_ids_txn, messages_by_key_txn, usernames_txn

_ADMINS = ("owner", "admin")


@dataclass(frozen=True)
class RoomDone:
    """The command was applied (or had been): the room now, and the event it stored, which
    concerns ``user_id`` (routing key ``routing.room_event(room, user_id)``)."""

    room: RoomInfo
    message: ChatMessage
    user_id: int
    duplicate: bool = False


class RoomCommands:
    """Applies membership changes through the message store's writer (``store.write``)."""

    def __init__(self, store: MessageStore, limits: RoomLimits | None = None) -> None:
        self._store = store
        self.limits = limits or RoomLimits()

    async def apply(self, command: RoomCommand) -> RoomDone:
        """Apply and commit ``command``; raises :class:`RoomError` when it is refused (nothing
        stored), or what :meth:`MessageStore.write` raises."""
        return await self._store.write(lambda conn, now: apply_command_txn(conn, command, now, self.limits))

    async def outcome(self, command: RoomCommand) -> list[tuple[str, Event]]:
        """Apply ``command``; what the worker publishes once it is committed: the membership
        event to the room and the user it concerns, then the answer to the actor. A refusal
        is only the answer. Raises for failures to retry (database down, fenced out)."""
        try:
            done = await self.apply(command)
        except RoomError as exc:
            return [(routing.room_result(command.actor.id), RoomCommandResult(
                command_id=command.command_id, actor_id=command.actor.id, code=exc.code, reason=exc.reason))]
        result = RoomCommandResult(
            command_id=command.command_id, actor_id=command.actor.id, room=done.room, message_id=done.message.id
        )
        return [
            (routing.room_event(done.room.id, done.user_id), MessageStored(message=done.message, duplicate=done.duplicate)),
            (routing.room_result(command.actor.id), result),
        ]


def describe(actor: str, event: RoomEvent) -> str:
    """The event as a sentence, stored as the message body (what clients without room
    support show)."""
    who = event.user.username if event.user is not None else ""
    match event.action:
        case "created":
            return f"{actor} created the room {event.name}"
        case "invited":
            return f"{actor} invited {who}"
        case "joined":
            return f"{actor} joined"
        case "left":
            return f"{actor} left"
        case "removed":
            return f"{actor} removed {who}"
        case "renamed":
            text = f"{actor} renamed the room to {event.name}"
            if event.topic is not None:
                text += f" and set the topic to {event.topic}"
            return text
        case "topic":
            return f"{actor} set the topic to {event.topic}" if event.topic else f"{actor} cleared the topic"
        case "role":
            if event.role == "owner":
                return f"{actor} handed ownership to {who}"
            return f"{actor} made {who} an admin" if event.role == "admin" else f"{actor} made {who} a member"
    raise AssertionError(event.action)  # pragma: no cover


async def apply_command_txn(
    conn: AsyncConnection, command: RoomCommand, now: datetime, limits: RoomLimits
) -> RoomDone:
    """Apply one membership change inside the caller's transaction (which must hold the
    writer lease); raises :class:`RoomError` when it is refused (roll back: nothing is
    half-written, though nothing was written before the refusal either)."""
    key = (command.actor.id, command.command_id)
    earlier = (await messages_by_key_txn(conn, [key])).get(key)
    if earlier is not None and earlier.room_id is not None and earlier.event is not None:
        info = await room_info_txn(conn, earlier.room_id, command.actor.id)
        assert info is not None
        concerned = earlier.event.user.id if earlier.event.user is not None else command.actor.id
        return RoomDone(info, earlier, concerned, duplicate=True)
    names = await usernames_txn(conn, {command.actor.id} | ({command.user_id} if command.user_id else set()))
    if command.actor.id not in names:
        raise RoomError(RoomErrorCode.SENDER_UNKNOWN, "your account no longer exists")
    actor = UserRef(id=command.actor.id, username=names[command.actor.id])
    step = _Step(conn, command, actor, now, limits, names)
    handler = {
        "create": step.create,
        "invite": step.invite,
        "join": step.join,
        "leave": step.leave,
        "remove": step.remove,
        "update": step.update,
        "role": step.role,
    }[command.op]
    return await handler()


class _Step:
    """One command's work; every method checks first and writes after."""

    def __init__(
        self,
        conn: AsyncConnection,
        command: RoomCommand,
        actor: UserRef,
        now: datetime,
        limits: RoomLimits,
        names: dict[int, str],
    ) -> None:
        self.conn = conn
        self.command = command
        self.actor = actor
        self.now = now
        self.limits = limits
        self.names = names

    # --- the ops ------------------------------------------------------------------------------

    async def create(self) -> RoomDone:
        name = self._name(self.command.name)
        topic = self._topic(self.command.topic)
        result = await self.conn.execute(
            rooms.insert().values(
                name=name,
                topic=topic,
                owner_id=self.actor.id,
                open=self.command.open,
                history=self.command.history,
                member_count=1,
                created_at=self.now,
            )
        )
        room_id = int(result.inserted_primary_key[0])
        message = await self._event(room_id, RoomEvent(action="created", name=name, topic=topic))
        await self._set(room_id, self.actor.id, JOINED, "owner", self._from(self.command.history, message.id), None)
        return await self._done(room_id, message, self.actor.id)

    async def invite(self) -> RoomDone:
        room_id, _ = await self._as_member()
        target = self._target()
        row = await membership_txn(self.conn, room_id, target.id)
        if row is not None and row.state == JOINED:
            raise RoomError(RoomErrorCode.ALREADY_MEMBER, f"{target.username} is already a member")
        if row is not None and row.state == INVITED:
            raise RoomError(RoomErrorCode.ALREADY_INVITED, f"{target.username} is already invited")
        message = await self._event(room_id, RoomEvent(action="invited", user=target))
        await self._set(room_id, target.id, INVITED, None, None, None)
        return await self._done(room_id, message, target.id)

    async def join(self) -> RoomDone:
        room = await self._room()
        row = await membership_txn(self.conn, room.id, self.actor.id)
        if row is not None and row.state == JOINED:
            raise RoomError(RoomErrorCode.ALREADY_MEMBER, "you are already a member")
        if not (row is not None and row.state == INVITED) and not room.open:
            raise not_found()
        if room.member_count >= self.limits.max_members:
            raise RoomError(RoomErrorCode.ROOM_FULL, f"the room has {self.limits.max_members} members, as many as a room may")
        message = await self._event(room.id, RoomEvent(action="joined", user=self.actor))
        await self._set(room.id, self.actor.id, JOINED, "member", self._from(room.history, message.id), None)
        await self._count(room.id, +1)
        return await self._done(room.id, message, self.actor.id)

    async def leave(self) -> RoomDone:
        room_id = self._room_id()
        row = await membership_txn(self.conn, room_id, self.actor.id)
        if row is None or row.state == LEFT:
            raise not_found()
        if row.role == "owner":
            raise RoomError(RoomErrorCode.ROOM_OWNER, "the owner cannot leave; hand ownership to someone first")
        message = await self._event(room_id, RoomEvent(action="left", user=self.actor))
        await self._end(room_id, self.actor.id, row, message.id)
        return await self._done(room_id, message, self.actor.id)

    async def remove(self) -> RoomDone:
        room_id, role = await self._as_member()
        target = self._target()
        if role not in _ADMINS:
            raise RoomError(RoomErrorCode.ROOM_FORBIDDEN, "only admins and the owner remove people")
        row = await membership_txn(self.conn, room_id, target.id)
        if row is None or row.state == LEFT:
            raise RoomError(RoomErrorCode.NOT_MEMBER, f"{target.username} is not a member or invited")
        if row.role == "owner":
            raise RoomError(RoomErrorCode.ROOM_OWNER, "the owner cannot be removed")
        if row.role == "admin" and role != "owner" and target.id != self.actor.id:
            raise RoomError(RoomErrorCode.ROOM_FORBIDDEN, "only the owner removes an admin")
        message = await self._event(room_id, RoomEvent(action="removed", user=target))
        await self._end(room_id, target.id, row, message.id)
        return await self._done(room_id, message, target.id)

    async def update(self) -> RoomDone:
        room_id, role = await self._as_member()
        if role != "owner":
            raise RoomError(RoomErrorCode.ROOM_FORBIDDEN, "only the owner renames the room or sets its topic")
        values: dict[str, object] = {}
        name = topic = None
        if self.command.name is not None:
            values["name"] = name = self._name(self.command.name)
        if self.command.topic is not None:
            values["topic"] = topic = self._topic(self.command.topic)
        if not values:
            raise RoomError(RoomErrorCode.ROOM_NAME_INVALID, "give a new name or a topic")
        await self.conn.execute(sa.update(rooms).where(rooms.c.id == room_id).values(**values))
        action = "renamed" if name is not None else "topic"
        message = await self._event(room_id, RoomEvent(action=action, name=name, topic=topic))
        return await self._done(room_id, message, self.actor.id)

    async def role(self) -> RoomDone:
        room_id, role = await self._as_member()
        target = self._target()
        new_role = self.command.role
        if role != "owner":
            raise RoomError(RoomErrorCode.ROOM_FORBIDDEN, "only the owner changes roles")
        if target.id == self.actor.id:
            raise RoomError(RoomErrorCode.ROOM_OWNER, "you are the owner; hand ownership to someone else")
        row = await membership_txn(self.conn, room_id, target.id)
        if row is None or row.state != JOINED:
            raise RoomError(RoomErrorCode.NOT_MEMBER, f"{target.username} is not a member")
        m = room_members.c
        if new_role == "owner":
            await self.conn.execute(sa.update(rooms).where(rooms.c.id == room_id).values(owner_id=target.id))
            await self.conn.execute(
                sa.update(room_members).where(m.room_id == room_id, m.user_id == self.actor.id)
                .values(role="admin", updated_at=self.now)
            )
        await self.conn.execute(
            sa.update(room_members).where(m.room_id == room_id, m.user_id == target.id)
            .values(role=new_role, updated_at=self.now)
        )
        message = await self._event(room_id, RoomEvent(action="role", user=target, role=new_role))
        return await self._done(room_id, message, target.id)

    # --- checks -------------------------------------------------------------------------------

    def _room_id(self) -> int:
        if self.command.room_id is None:
            raise not_found()
        return self.command.room_id

    async def _room(self) -> sa.Row:
        room_id = self._room_id()
        query = sa.select(rooms.c.id, rooms.c.open, rooms.c.history, rooms.c.member_count).where(rooms.c.id == room_id)
        row = (await self.conn.execute(query.with_for_update())).first()
        if row is None:
            raise not_found()
        return row

    async def _as_member(self) -> tuple[int, str]:
        room_id = self._room_id()
        row = await membership_txn(self.conn, room_id, self.actor.id)
        if row is None or row.state != JOINED:
            raise not_found()
        return room_id, row.role

    def _target(self) -> UserRef:
        user_id = self.command.user_id
        if user_id is None or user_id not in self.names:
            raise RoomError(RoomErrorCode.USER_UNKNOWN, "no such user")
        return UserRef(id=user_id, username=self.names[user_id])

    def _name(self, name: str | None) -> str:
        if name is None or is_blank(name):
            raise RoomError(RoomErrorCode.ROOM_NAME_INVALID, "a room needs a name")
        name = name.strip()
        if len(name) > self.limits.name_max:
            raise RoomError(
                RoomErrorCode.ROOM_NAME_INVALID, f"a room name has at most {self.limits.name_max} characters"
            )
        return name

    def _topic(self, topic: str | None) -> str | None:
        if topic is None or is_blank(topic):
            return None
        if len(topic) > self.limits.topic_max:
            raise RoomError(
                RoomErrorCode.ROOM_TOPIC_TOO_LONG, f"a topic has at most {self.limits.topic_max} characters"
            )
        return topic.strip()

    @staticmethod
    def _from(history: str, event_id: int) -> int:
        # "all": the whole history; "joined": from one's own join event on.
        return 0 if history == "all" else event_id

    # --- writes -------------------------------------------------------------------------------

    async def _event(self, room_id: int, event: RoomEvent) -> ChatMessage:
        """Store the event as the room's next message: the next id, and its prev_id."""
        conversation = room_conversation(room_id)
        top = (await self.conn.execute(sa.select(sa.func.max(messages.c.id)))).scalar() or 0
        prev = (await last_ids_txn(self.conn, {conversation})).get(conversation)
        body = describe(self.actor.username, event)
        row = {
            "id": top + 1,
            "sender_id": self.actor.id,
            "recipient_id": None,
            "conversation": conversation,
            "body": body,
            "client_msg_id": self.command.command_id,
            "created_at": self.now,
            "prev_id": prev,
            "event": event.model_dump_json(),
        }
        await self.conn.execute(messages.insert().values(**row))
        return ChatMessage(
            id=top + 1,
            sender=self.actor,
            recipient_id=None,
            body=body,
            created_at=_aware_utc(self.now),
            client_msg_id=self.command.command_id,
            prev_id=prev,
            room_id=room_id,
            event=event,
        )

    async def _set(
        self, room_id: int, user_id: int, state: str, role: str | None, low: int | None, high: int | None
    ) -> None:
        m = room_members.c
        values = {"state": state, "role": role, "visible_from": low, "visible_until": high, "updated_at": self.now}
        changed = await self.conn.execute(
            sa.update(room_members).where(m.room_id == room_id, m.user_id == user_id).values(**values)
        )
        if changed.rowcount == 0:
            await self.conn.execute(room_members.insert().values(room_id=room_id, user_id=user_id, **values))

    async def _end(self, room_id: int, user_id: int, row: sa.Row, event_id: int) -> None:
        """Leave or be removed: a member's window closes at the event; an invitation that is
        declined or withdrawn opens none, beyond the event itself."""
        if row.state == JOINED:
            await self._set(room_id, user_id, LEFT, None, row.visible_from, event_id)
            await self._count(room_id, -1)
        else:
            await self._set(room_id, user_id, LEFT, None, event_id, event_id)

    async def _count(self, room_id: int, delta: int) -> None:
        await self.conn.execute(
            sa.update(rooms).where(rooms.c.id == room_id).values(member_count=rooms.c.member_count + delta)
        )

    async def _done(self, room_id: int, message: ChatMessage, user_id: int) -> RoomDone:
        info = await room_info_txn(self.conn, room_id, self.actor.id)
        assert info is not None
        return RoomDone(info, message, user_id)
