"""Group rooms over HTTP: listing one's rooms, a room's members, creating a room.

Reads go straight to the store through the same membership-checked functions the history
service uses (``services.persistence.rooms``). Creating a room is a membership change, and
those are stored by the persistence worker alone, in order with messages: so the API publishes
the same ``RoomCommand`` a gateway would and waits (at most ``timeout`` seconds) for the
worker's answer on a queue of its own bound to the caller's result key.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from chase import routing
from chase.bus import Bus, BusUnavailable
from chase.bus.port import Delivery, QueueSpec
from chase.clock import Clock, TokenSource
from chase.schemas import RoomCommand, RoomCommandResult, RoomInfo, RoomList, RoomMemberList, UserRef
from services.auth.errors import ErrorCode, RoomRefused
from services.persistence.rooms import RoomError, RoomReader

#: How long a room creation waits for the persistence worker before answering 503.
CREATE_TIMEOUT_SECONDS = 5.0

_CODES = {
    "room_name_invalid": (422, ErrorCode.ROOM_NAME_INVALID),
    "room_topic_too_long": (422, ErrorCode.ROOM_TOPIC_TOO_LONG),
    "room_not_found": (404, ErrorCode.ROOM_NOT_FOUND),
}


def refused(code: str, message: str) -> RoomRefused:
    status, ours = _CODES.get(code, (400, ErrorCode.BAD_REQUEST))
    return RoomRefused(status, ours, message)


def unavailable() -> RoomRefused:
    return RoomRefused(503, ErrorCode.UNAVAILABLE, "Rooms cannot be changed right now; try again shortly.")


class RoomsApi:
    """The use cases behind ``/api/v1/rooms``."""

    def __init__(
        self, engine: AsyncEngine, bus: Bus | None, clock: Clock, tokens: TokenSource,
        timeout: float = CREATE_TIMEOUT_SECONDS,
    ) -> None:
        self._reader = RoomReader(engine)
        self._bus = bus
        self._clock = clock
        self._tokens = tokens
        self._timeout = timeout

    async def mine(self, user_id: int) -> RoomList:
        return await self._reader.rooms_of(user_id)

    async def members(self, user_id: int, room_id: int) -> RoomMemberList:
        try:
            return await self._reader.members(user_id, room_id)
        except RoomError as exc:
            raise refused(exc.code, exc.reason) from None

    async def create(self, actor: UserRef, name: str, topic: str | None, open_: bool, history: str) -> RoomInfo:
        """Create a room owned by ``actor``; raises :class:`RoomRefused` (422 for a bad name or
        topic, 503 when the worker does not answer in time: the room may still be created)."""
        if self._bus is None:
            raise unavailable()
        command = RoomCommand(
            command_id=f"room.{self._tokens.token(12)}", actor=actor, op="create", name=name, topic=topic,
            open=open_, history=history, submitted_at=self._clock.now(),
        )
        answer: asyncio.Future[RoomCommandResult] = asyncio.get_running_loop().create_future()

        async def on_result(delivery: Delivery) -> None:
            event = delivery.event
            if isinstance(event, RoomCommandResult) and event.command_id == command.command_id and not answer.done():
                answer.set_result(event)
            await delivery.ack()

        binding = routing.room_result(actor.id)
        queue = f"auth.room.{command.command_id}"
        try:
            subscription = await self._bus.consume(
                QueueSpec(queue, bindings=(binding,), durable=False, exclusive=True), on_result, prefetch=10
            )
        except BusUnavailable:
            raise unavailable() from None
        try:
            await self._bus.publish(routing.ROOM_COMMAND, command)
            async with asyncio.timeout(self._timeout):
                result = await answer
        except (BusUnavailable, TimeoutError):
            raise unavailable() from None
        finally:
            # Unbound first, then cancelled: RabbitMQ deletes the exclusive queue with its
            # consumer; the in-process bus keeps an empty queue that nothing routes to.
            try:
                await self._bus.unbind(queue, binding)
            except (BusUnavailable, KeyError):
                pass
            await subscription.cancel()
        if result.room is None:
            raise refused(result.code or "", result.reason or "refused")
        return result.room
