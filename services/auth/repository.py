"""SQL for users and sessions (SQLAlchemy Core on ``chase.store.tables``).

Functions ending in ``_txn`` run inside the caller's transaction and take its connection; the
caller opens one transaction per request (``async with engine.begin()``), so a failure leaves
nothing half-written. Timestamps are stored as naive UTC and returned aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chase.store.tables import sessions, users
from services.auth.errors import UsernameTaken


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    created_at: datetime


@dataclass(frozen=True)
class SessionRecord:
    id: str
    token_hash: str
    user_id: int
    username: str
    expires_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None = None


def to_db(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_db(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _user(row: sa.Row) -> UserRecord:
    return UserRecord(row.id, row.username, row.password_hash, from_db(row.created_at))


async def insert_user_txn(conn: AsyncConnection, username: str, password_hash: str, now: datetime) -> UserRecord:
    """Add a user; raises :class:`UsernameTaken` when the name exists in any letter case."""
    if await find_user_by_name_txn(conn, username) is not None:
        raise UsernameTaken()
    try:
        result = await conn.execute(
            sa.insert(users).values(username=username, password_hash=password_hash, created_at=to_db(now))
        )
    except IntegrityError:
        # Another request registered the same name between our check and our insert.
        raise UsernameTaken() from None
    user_id = result.inserted_primary_key[0]
    return UserRecord(user_id, username, password_hash, from_db(to_db(now)))


async def find_user_by_name_txn(conn: AsyncConnection, username: str) -> UserRecord | None:
    row = (
        await conn.execute(sa.select(users).where(users.c.username_lower == username.lower()))
    ).first()
    return _user(row) if row is not None else None


async def get_user_txn(conn: AsyncConnection, user_id: int) -> UserRecord | None:
    row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
    return _user(row) if row is not None else None


async def list_users_txn(conn: AsyncConnection, after_id: int, limit: int) -> list[tuple[int, str]]:
    """Up to ``limit`` (id, username) pairs with id > ``after_id``, by ascending id."""
    rows = await conn.execute(
        sa.select(users.c.id, users.c.username).where(users.c.id > after_id).order_by(users.c.id).limit(limit)
    )
    return [(row.id, row.username) for row in rows]


async def insert_session_txn(
    conn: AsyncConnection,
    *,
    session_id: str,
    token_hash: str,
    user_id: int,
    created_at: datetime,
    expires_at: datetime,
    device: str | None = None,
) -> None:
    await conn.execute(
        sa.insert(sessions).values(
            id=session_id,
            token_hash=token_hash,
            user_id=user_id,
            created_at=to_db(created_at),
            expires_at=to_db(expires_at),
            device=device,
            last_seen_at=to_db(created_at),
        )
    )


async def find_session_by_token_hash_txn(conn: AsyncConnection, token_hash: str) -> SessionRecord | None:
    row = (
        await conn.execute(
            sa.select(
                sessions.c.id,
                sessions.c.token_hash,
                sessions.c.user_id,
                users.c.username,
                sessions.c.expires_at,
                sessions.c.revoked_at,
                sessions.c.last_seen_at,
            )
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == token_hash)
        )
    ).first()
    if row is None:
        return None
    revoked = from_db(row.revoked_at) if row.revoked_at is not None else None
    seen = from_db(row.last_seen_at) if row.last_seen_at is not None else None
    return SessionRecord(row.id, row.token_hash, row.user_id, row.username, from_db(row.expires_at), revoked, seen)


async def revoke_session_txn(conn: AsyncConnection, session_id: str, now: datetime) -> bool:
    """Mark the session revoked; False when it was already revoked (or does not exist)."""
    result = await conn.execute(
        sa.update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=to_db(now))
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class SessionRow:
    id: str
    device: str | None
    created_at: datetime
    last_seen_at: datetime | None
    expires_at: datetime


def _live(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(sessions.c.revoked_at.is_(None), sessions.c.expires_at > to_db(now))


async def list_sessions_txn(conn: AsyncConnection, user_id: int, now: datetime) -> list[SessionRow]:
    """The user's live sessions, most recently created first."""
    rows = await conn.execute(
        sa.select(sessions.c.id, sessions.c.device, sessions.c.created_at, sessions.c.last_seen_at,
                  sessions.c.expires_at)
        .where(sessions.c.user_id == user_id, _live(now))
        .order_by(sessions.c.created_at.desc(), sessions.c.id)
    )
    return [
        SessionRow(row.id, row.device, from_db(row.created_at),
                   from_db(row.last_seen_at) if row.last_seen_at is not None else None, from_db(row.expires_at))
        for row in rows
    ]


async def revoke_sessions_txn(
    conn: AsyncConnection, user_id: int, now: datetime, *, only: str | None = None, keep: str | None = None
) -> list[str]:
    """Revoke the user's live sessions (just ``only``, or all but ``keep``); the ids revoked."""
    condition = sa.and_(sessions.c.user_id == user_id, _live(now))
    if only is not None:
        condition = sa.and_(condition, sessions.c.id == only)
    if keep is not None:
        condition = sa.and_(condition, sessions.c.id != keep)
    ids = [row.id for row in await conn.execute(sa.select(sessions.c.id).where(condition))]
    if ids:
        await conn.execute(
            sa.update(sessions)
            .where(sessions.c.id.in_(ids), sessions.c.revoked_at.is_(None))
            .values(revoked_at=to_db(now))
        )
    return ids


async def touch_session_txn(conn: AsyncConnection, session_id: str, now: datetime, every: float) -> None:
    """Record that the session was used, at most once every ``every`` seconds (one write)."""
    stale = to_db(now) - timedelta(seconds=every)
    await conn.execute(
        sa.update(sessions)
        .where(sessions.c.id == session_id,
               sa.or_(sessions.c.last_seen_at.is_(None), sessions.c.last_seen_at < stale))
        .values(last_seen_at=to_db(now))
    )


async def set_password_hash_txn(conn: AsyncConnection, user_id: int, password_hash: str) -> None:
    await conn.execute(sa.update(users).where(users.c.id == user_id).values(password_hash=password_hash))


async def purge_sessions_txn(conn: AsyncConnection, now: datetime) -> int:
    """Delete sessions that expired or were revoked; their tokens are dead either way."""
    result = await conn.execute(
        sa.delete(sessions).where(sa.or_(sessions.c.expires_at <= to_db(now), sessions.c.revoked_at.is_not(None)))
    )
    return result.rowcount or 0
