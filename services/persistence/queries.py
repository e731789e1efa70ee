"""Answering history and sync queries that arrive over the bus (request/reply).

Gateways ask with ``await bus.request(routing.HISTORY_RPC, HistoryQuery(...))`` and get a
:class:`~chase.schemas.MessagePage` or a :class:`~chase.schemas.QueryFailed`. The viewer id in
a query is the authenticated user the gateway vouches for; the store only ever reads
conversations that viewer is in.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from chase import routing
from chase.bus.port import QueueSpec
from chase.logging import get_logger
from chase.schemas import (
    Event,
    HistoryQuery,
    MessagePage,
    QueryFailed,
    RoomList,
    RoomMemberList,
    RoomMembersQuery,
    RoomsQuery,
    SyncQuery,
)
from services.persistence.errors import QueryErrorCode
from services.persistence.rooms import RoomError

log = get_logger(__name__)

#: Not durable: a query nobody answers in time is asked again by a client, not replayed.
HISTORY_QUEUE_SPEC = QueueSpec(routing.HISTORY_QUEUE, bindings=(routing.HISTORY_RPC,), durable=False)


class MessageReader(Protocol):
    async def history(
        self, viewer_id: int, with_user_id: int | None, before_id: int | None, limit: int, room_id: int | None = None
    ) -> MessagePage: ...

    async def sync(self, viewer_id: int, after_id: int, limit: int) -> MessagePage: ...


class RoomsReader(Protocol):
    async def rooms_of(self, viewer_id: int) -> RoomList: ...

    async def members(self, viewer_id: int, room_id: int) -> RoomMemberList: ...


class HistoryResponder:
    """A bus responder: pass it to ``bus.serve(HISTORY_QUEUE_SPEC, responder)``."""

    def __init__(self, reader: MessageReader, rooms: RoomsReader | None = None) -> None:
        self._reader = reader
        self._rooms = rooms

    async def __call__(self, event: Event) -> Event:
        """The reply to one query; never raises, failures are a :class:`QueryFailed`."""
        try:
            return await self._answer(event)
        except RoomError as exc:
            return QueryFailed(code=exc.code, reason=exc.reason)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("query_store_unavailable", query=event.type, error=type(exc).__name__)
            return QueryFailed(code=QueryErrorCode.STORE_UNAVAILABLE, reason="history is unavailable, try again later")
        except Exception:
            log.exception("query_failed", query=event.type)
            return QueryFailed(code=QueryErrorCode.INTERNAL, reason="internal error")

    async def _answer(self, event: Event) -> Event:
        match event:
            case HistoryQuery() if event.room_id is not None:
                return await self._reader.history(
                    event.viewer_id, None, event.before_id, event.limit, room_id=event.room_id
                )
            case HistoryQuery():
                return await self._reader.history(event.viewer_id, event.with_user_id, event.before_id, event.limit)
            case RoomsQuery() if self._rooms is not None:
                return await self._rooms.rooms_of(event.viewer_id)
            case RoomMembersQuery() if self._rooms is not None:
                return await self._rooms.members(event.viewer_id, event.room_id)
            case SyncQuery():
                return await self._reader.sync(event.viewer_id, event.after_id, event.limit)
            case _:
                log.warning("query_unknown_type", query=event.type)
                return QueryFailed(code=QueryErrorCode.BAD_QUERY, reason=f"not a query: {event.type}")
