"""The operator's tools over users and sessions (``chase admin``).

Plain async functions taking their dependencies (engine, optional bus, clock). Each runs one
transaction, and publishes only after it committed.

**Disabling without a schema change.** A disabled account's password hash is replaced by the
bcrypt hash of 256 random bits under a fixed, recognisable salt (``chaseDisabledAccount..``):
a valid hash that no password matches, so a login fails exactly as with a wrong password (same
code, same time), and every live session is revoked at once, on every gateway, through the
``session.revoked`` event each gateway already obeys. ``reset-password`` sets a real password
again, which is also how an account is enabled again.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime

import bcrypt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chase import passwords, routing
from chase.bus import Bus, BusUnavailable
from chase.clock import Clock
from chase.logging import get_logger
from chase.schemas import SessionRevoked
from chase.store.tables import messages, sessions, users
from services.auth import repository as repo
from services.auth.repository import from_db, to_db
from services.auth.security import PasswordHasher

log = get_logger("chase.admin")

#: A valid bcrypt salt (22 characters of its alphabet) that marks a disabled account's hash.
DISABLED_SALT = "chaseDisabledAccount.."


class AdminError(Exception):
    """An operator's request that cannot be done; the message says why in one line."""


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    created_at: datetime
    disabled: bool
    live_sessions: int


@dataclass(frozen=True)
class Counts:
    users: int
    disabled_users: int
    live_sessions: int
    messages: int


def is_disabled(password_hash: str) -> bool:
    return password_hash[7:29] == DISABLED_SALT


def _disabled_hash(rounds: int) -> str:
    salt = f"$2b${rounds:02d}${DISABLED_SALT}".encode("ascii")
    return bcrypt.hashpw(secrets.token_hex(32).encode("ascii"), salt).decode("ascii")


def _live(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(sessions.c.revoked_at.is_(None), sessions.c.expires_at > to_db(now))


async def list_users(engine: AsyncEngine, clock: Clock, *, after_id: int = 0, limit: int = 100) -> list[UserRow]:
    """Users with id > ``after_id``, by id, with how many live sessions each has."""
    live = (
        sa.select(sa.func.count()).select_from(sessions)
        .where(sessions.c.user_id == users.c.id, _live(clock.now())).scalar_subquery()
    )
    query = (
        sa.select(users.c.id, users.c.username, users.c.created_at, users.c.password_hash, live.label("live"))
        .where(users.c.id > after_id).order_by(users.c.id).limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [UserRow(r.id, r.username, from_db(r.created_at), is_disabled(r.password_hash), r.live) for r in rows]


async def counts(engine: AsyncEngine, clock: Clock) -> Counts:
    async with engine.connect() as conn:
        hashes = (await conn.execute(sa.select(users.c.password_hash))).scalars().all()
        live = (await conn.execute(sa.select(sa.func.count()).select_from(sessions).where(_live(clock.now())))).scalar_one()
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar_one()
    return Counts(len(hashes), sum(is_disabled(h) for h in hashes), live, stored)


async def disable_user(engine: AsyncEngine, bus: Bus | None, clock: Clock, username: str, *, rounds: int) -> int:
    """Make the account unusable and end its sessions everywhere; returns how many ended."""
    password_hash = await asyncio.to_thread(_disabled_hash, rounds)
    return await _replace_password(engine, bus, clock, username, password_hash)


async def reset_password(
    engine: AsyncEngine, bus: Bus | None, clock: Clock, username: str, password: str, *, rounds: int
) -> int:
    """Set a new password (enabling a disabled account) and end the user's sessions everywhere,
    so whoever knew the old one is out; returns how many sessions ended."""
    wrong = passwords.problem(password, username)
    if wrong is not None:
        raise AdminError(wrong.message)
    # The service's own hasher: a login checks the password exactly as it was set here.
    hashed = await PasswordHasher(rounds).hash(password)
    return await _replace_password(engine, bus, clock, username, hashed)


async def purge_sessions(engine: AsyncEngine, clock: Clock) -> int:
    """Delete sessions that expired or were revoked (their tokens are dead either way)."""
    async with engine.begin() as conn:
        return await repo.purge_sessions_txn(conn, clock.now())


async def _replace_password(engine: AsyncEngine, bus: Bus | None, clock: Clock, username: str, new_hash: str) -> int:
    async with engine.begin() as conn:
        user_id = await _user_id_txn(conn, username)
        await repo.set_password_hash_txn(conn, user_id, new_hash)
        ended = await repo.revoke_sessions_txn(conn, user_id, clock.now())
    await _announce(bus, user_id, ended)
    return len(ended)


async def _user_id_txn(conn: AsyncConnection, username: str) -> int:
    user_id = (await conn.execute(
        sa.select(users.c.id).where(users.c.username_lower == username.lower())
    )).scalar_one_or_none()
    if user_id is None:
        raise AdminError(f"no user is called {username!r}")
    return user_id


async def _announce(bus: Bus | None, user_id: int, session_ids: list[str]) -> None:
    """Tell every gateway to close these sessions' connections (4401 "session revoked")."""
    if bus is None or not session_ids:
        return
    try:
        await bus.publish_many([
            (routing.session_revoked(user_id), SessionRevoked(user_id=user_id, session_id=s)) for s in session_ids
        ])
    except BusUnavailable as exc:
        # The tokens are already dead for every new check; only open connections linger.
        raise AdminError(f"sessions revoked, but the gateways could not be told ({exc}); "
                         "their open connections end at their next reconnect") from None
    log.info("sessions revoked by the operator", user_id=user_id, sessions=len(session_ids))
