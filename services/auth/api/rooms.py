"""``/api/v1/rooms``: the caller's group rooms, a room's members, and creating a room.

Everything else about rooms (inviting, joining, leaving, roles, messages) is on the
WebSocket (``docs/protocol.md`` section 9), where its events reach every member in order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from chase.schemas import MAX_ID, RoomInfo, RoomMember, UserRef
from services.auth.api.deps import CurrentSession, require_json
from services.auth.errors import ErrorResponse
from services.auth.rooms import RoomsApi

_ERR = {"model": ErrorResponse}

rooms_api = APIRouter(prefix="/api/v1", tags=["rooms"])
#: Creating a room needs the bus (the persistence worker makes it): included only with one.
rooms_create_api = APIRouter(prefix="/api/v1", tags=["rooms"])


def _rooms(request: Request) -> RoomsApi:
    return request.app.state.rooms_api


Rooms = Annotated[RoomsApi, Depends(_rooms)]


class RoomCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Checked against CHASE_PERSISTENCE_ROOM_NAME_MAX_CHARS by the store (422 room_name_invalid).
    name: str = Field(max_length=1000)
    topic: str | None = Field(None, max_length=5000)
    open: bool = False
    history: Literal["joined", "all"] = "joined"


class RoomPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rooms: list[RoomInfo]


class RoomMembers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: int
    members: list[RoomMember]


@rooms_api.get("/rooms", response_model=RoomPage, responses={401: _ERR})
async def my_rooms(session: CurrentSession, rooms: Rooms) -> RoomPage:
    """The rooms the caller is in or invited to (``role`` "invited"), by id."""
    return RoomPage(rooms=(await rooms.mine(session.user.id)).rooms)


@rooms_api.get("/rooms/{room_id}/members", response_model=RoomMembers, responses={401: _ERR, 404: _ERR, 422: _ERR})
async def room_members(
    session: CurrentSession, rooms: Rooms, room_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> RoomMembers:
    """Members and invitations of a room the caller is in. 404 ``room_not_found`` for a room
    that does not exist and for one the caller is not in alike."""
    found = await rooms.members(session.user.id, room_id)
    return RoomMembers(room_id=found.room_id, members=found.members)


@rooms_create_api.post(
    "/rooms",
    status_code=status.HTTP_201_CREATED,
    response_model=RoomInfo,
    dependencies=[Depends(require_json)],
    responses={401: _ERR, 415: _ERR, 422: _ERR, 503: _ERR},
)
async def create_room(body: RoomCreate, session: CurrentSession, rooms: Rooms) -> RoomInfo:
    """Create a room owned by the caller. 422 ``room_name_invalid`` / ``room_topic_too_long``;
    503 ``unavailable`` when the store did not answer within 5 s (the room may still appear)."""
    actor = UserRef(id=session.user.id, username=session.user.username)
    return await rooms.create(actor, body.name, body.topic, body.open, body.history)
