"""Group rooms in the store: who is in which room, and what each member may read.

Membership is a row per (room, user) in ``room_members`` (see ``chase.store.tables``) with a
state (invited, joined, left), a role while joined, and the window of message ids the user
may read: ``[visible_from, visible_until]``. In a room whose ``history`` is "joined" the
window opens at the member's own join event; in an "all" room at 0. It closes at their leave
or removal event, so a former member keeps what they could read while in the room and gets
nothing after. Invitations open no window: an invited user reads nothing until they join.

Every read of a room's messages goes through :func:`window_txn` or :func:`sync_windows_txn`,
and every stored message through :func:`joined_pairs_txn`: membership is checked on every
read and every send. "No such room" and "not a member" raise the same
:class:`RoomError` (``room_not_found``), so nobody learns which rooms exist.

Membership changes themselves are in :mod:`services.persistence.room_commands`. Functions
ending in ``_txn`` run on the caller's connection (inside its transaction, if any).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chase.schemas import RoomInfo, RoomList, RoomMember, RoomMemberList, UserRef
from chase.store.tables import messages, room_members, rooms, users
from services.persistence.errors import RoomErrorCode

INVITED, JOINED, LEFT = "invited", "joined", "left"
NOT_FOUND_REASON = "no such room, or you are not a member of it"


class RoomError(Exception):
    """A membership change or room read that is refused; ``code`` goes to the client."""

    def __init__(self, code: RoomErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def not_found() -> RoomError:
    return RoomError(RoomErrorCode.ROOM_NOT_FOUND, NOT_FOUND_REASON)


@dataclass(frozen=True)
class RoomLimits:
    """Configurable bounds (``CHASE_PERSISTENCE_ROOM_*``); the columns cap the first two."""

    name_max: int = 100
    topic_max: int = 500
    max_members: int = 1000


@dataclass(frozen=True)
class Window:
    """The ids of a room's conversation one user may read: ``low <= id <= high`` (None: open)."""

    room_id: int
    low: int
    high: int | None


# Made once: building an alias's columns is most of what building these queries costs, and
# a reconnect storm asks for thousands of users' rooms at once.
_owner = users.alias("owner")
_mine = room_members.alias("mine")
_member = room_members.alias("m")


def _info_query(viewer_id: int | sa.BindParameter[int]) -> sa.Select:
    mine = _mine
    return (
        sa.select(
            rooms.c.id,
            rooms.c.name,
            rooms.c.topic,
            rooms.c.open,
            rooms.c.history,
            rooms.c.member_count,
            rooms.c.owner_id,
            _owner.c.username.label("owner_name"),
            mine.c.state,
            mine.c.role,
        )
        .select_from(
            rooms.join(_owner, _owner.c.id == rooms.c.owner_id).outerjoin(
                mine, sa.and_(mine.c.room_id == rooms.c.id, mine.c.user_id == viewer_id)
            )
        )
    )


def _to_info(row: sa.Row) -> RoomInfo:
    role = None
    if row.state == JOINED:
        role = row.role
    elif row.state == INVITED:
        role = INVITED
    return RoomInfo(
        id=row.id,
        name=row.name,
        topic=row.topic,
        owner=UserRef(id=row.owner_id, username=row.owner_name),
        open=bool(row.open),
        history=row.history,
        member_count=row.member_count,
        role=role,
    )


async def room_info_txn(conn: AsyncConnection, room_id: int, viewer_id: int) -> RoomInfo | None:
    """The room as ``viewer_id`` sees it, or None when it does not exist (no check of rights)."""
    row = (await conn.execute(_info_query(viewer_id).where(rooms.c.id == room_id))).first()
    return None if row is None else _to_info(row)


async def rooms_of_txn(conn: AsyncConnection, viewer_id: int) -> list[RoomInfo]:
    """The rooms ``viewer_id`` is in or invited to, by id: one range of the
    ``(user_id, state, room_id)`` index, then one primary-key probe per room."""
    return [_to_info(row) for row in (await conn.execute(rooms_of_query(viewer_id))).all()]


def rooms_of_query(viewer_id: int) -> sa.Select:
    return _ROOMS_OF.params(viewer_id=viewer_id)


def _rooms_of_statement() -> sa.Select:
    viewer_id = sa.bindparam("viewer_id")
    member = _member
    return (
        _info_query(viewer_id)
        .join(member, member.c.room_id == rooms.c.id)
        .where(member.c.user_id == viewer_id, member.c.state.in_((INVITED, JOINED)))
        .order_by(rooms.c.id)
    )


#: Built once (building it cost about 2.7 ms of CPU, asking it a fraction of that): the
#: statement every connecting user's room list runs, with the viewer as its one parameter.
_ROOMS_OF = _rooms_of_statement()


async def membership_txn(conn: AsyncConnection, room_id: int, user_id: int) -> sa.Row | None:
    """The (state, role, visible_from, visible_until) row of one user in one room, or None."""
    m = room_members.c
    query = sa.select(m.state, m.role, m.visible_from, m.visible_until).where(
        m.room_id == room_id, m.user_id == user_id
    )
    return (await conn.execute(query)).first()


async def members_txn(conn: AsyncConnection, viewer_id: int, room_id: int) -> list[RoomMember]:
    """The joined members and open invitations of a room, by user id; only a member may ask
    (else :class:`RoomError` ``room_not_found``)."""
    mine = await membership_txn(conn, room_id, viewer_id)
    if mine is None or mine.state != JOINED:
        raise not_found()
    rows = sorted((await conn.execute(members_query(room_id))).all(), key=lambda row: row.user_id)
    return [
        RoomMember(user=UserRef(id=row.user_id, username=row.username), role=row.role if row.state == JOINED else INVITED)
        for row in rows
    ]


def members_query(room_id: int) -> sa.Select:
    """Two ranges of the (room_id, state, user_id) index: the joined and the invited, never
    the rows of people who left. Unordered: sorted by the caller (an ORDER BY would make
    the planner prefer the primary key, which reads the leavers too)."""
    m = room_members.c
    return (
        sa.select(m.user_id, users.c.username, m.state, m.role)
        .select_from(room_members.join(users, users.c.id == m.user_id))
        .where(m.room_id == room_id, m.state.in_((JOINED, INVITED)))
    )


async def window_txn(conn: AsyncConnection, viewer_id: int, room_id: int) -> Window:
    """What ``viewer_id`` may read of the room; :class:`RoomError` ``room_not_found`` when
    nothing (no such room, never a member, or only invited)."""
    row = await membership_txn(conn, room_id, viewer_id)
    if row is None or row.state == INVITED or row.visible_from is None:
        raise not_found()
    return Window(room_id, row.visible_from, row.visible_until)


async def sync_windows_txn(conn: AsyncConnection, viewer_id: int, after_id: int) -> list[Window]:
    """The windows of every room ``viewer_id`` reads anything of above ``after_id``: rooms
    they are in, and rooms they left after that id. One range of the user's index."""
    query = sync_windows_query(viewer_id, after_id)
    return [
        Window(row.room_id, row.visible_from, row.visible_until)
        for row in (await conn.execute(query)).all()
        if row.visible_from is not None
    ]


def sync_windows_query(viewer_id: int, after_id: int) -> sa.Select:
    m = room_members.c
    return sa.select(m.room_id, m.visible_from, m.visible_until).where(
        m.user_id == viewer_id,
        m.state.in_((JOINED, LEFT)),
        sa.or_(m.visible_until.is_(None), m.visible_until > after_id),
    )


async def joined_pairs_txn(conn: AsyncConnection, pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which (room_id, user_id) of ``pairs`` are joined members now."""
    wanted = set(pairs)
    if not wanted:
        return set()
    m = room_members.c
    query = sa.select(m.room_id, m.user_id).where(
        m.room_id.in_({room for room, _ in wanted}),
        m.user_id.in_({user for _, user in wanted}),
        m.state == JOINED,
    )
    return {(row.room_id, row.user_id) for row in (await conn.execute(query)).all()} & wanted


class RoomReader:
    """The read side: a user's rooms and a room's members, answered by the history responder."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def rooms_of(self, viewer_id: int) -> RoomList:
        """The viewer's rooms and invitations; ``as_of`` is read first in the same snapshot, so
        any membership event with a larger id is not reflected in the list."""
        async with self._engine.begin() as conn:
            as_of = (await conn.execute(sa.select(sa.func.max(messages.c.id)))).scalar() or 0
            found = await rooms_of_txn(conn, viewer_id)
        return RoomList(rooms=found, as_of=as_of)

    async def members(self, viewer_id: int, room_id: int) -> RoomMemberList:
        """Raises :class:`RoomError` room_not_found unless the viewer is a member."""
        async with self._engine.connect() as conn:
            found = await members_txn(conn, viewer_id, room_id)
        return RoomMemberList(room_id=room_id, members=found)
