"""The auth use cases: register, log in, check a token, log out, list users.

Plain async methods on a small class holding its dependencies (engine, hasher, clock, token
source, throttle, optional bus); the HTTP layer in ``api/`` only translates. Each use case runs
at most one write transaction, and publishes to the bus only after it committed.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from chase import metrics, passwords, routing
from chase.bus import Bus, BusUnavailable
from chase.clock import Clock, TokenSource
from chase.logging import get_logger
from chase.schemas import SessionRevoked, UserRef
from services.auth import repository as repo
from services.auth.devices import delete_devices_txn, purge_devices_txn
from services.auth.errors import InvalidCredentials, InvalidToken, TooManyAttempts, WeakPassword, WrongPassword
from services.auth.models import (
    USERNAME_PATTERN,
    LoginRequest,
    PasswordChange,
    SessionCreated,
    SessionInfo,
    SessionList,
    SessionPublic,
    UserCreate,
    UserPage,
    UserPublic,
)
from services.auth.security import MAX_TOKEN_CHARS, PasswordHasher, hash_token, new_session_id, new_token, same_hash
from services.auth.throttle import LoginThrottle

log = get_logger("chase.auth")

#: A session's last_seen_at is written at most this often (one write per token check
#: otherwise).
LAST_SEEN_EVERY_SECONDS = 60.0


class AuthService:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        hasher: PasswordHasher,
        clock: Clock,
        tokens: TokenSource,
        throttle: LoginThrottle,
        session_ttl: timedelta,
        bus: Bus | None = None,
        checks_per_address: int = 2,
    ) -> None:
        self.engine = engine
        # Password checks (bcrypt) in progress per client address, in this process: one client
        # firing hundreds of logins at once gets a few checked and the rest 429 at once, so it
        # cannot take every core from everyone else's logins.
        self._checks: dict[str, int] = {}
        self._checks_per_address = checks_per_address
        self._hasher = hasher
        self._clock = clock
        self._tokens = tokens
        self._throttle = throttle
        self._ttl = session_ttl
        self._bus = bus

    async def register(self, request: UserCreate) -> UserPublic:
        """Create the user; raises ``UsernameTaken`` when the name exists in any letter case."""
        # Hash before opening the transaction: no connection is held during bcrypt.
        password_hash = await self._hasher.hash(request.password)
        async with self.engine.begin() as conn:
            user = await repo.insert_user_txn(conn, request.username, password_hash, self._clock.now())
        log.info("user registered", user_id=user.id)
        metrics.AUTH_REGISTRATIONS.inc()
        return UserPublic(id=user.id, username=user.username, created_at=user.created_at)

    async def login(self, request: LoginRequest, *, address: str, device: str | None = None) -> SessionCreated:
        """A new session for valid credentials, for a client at ``address``.

        Raises ``TooManyAttempts`` while the address, the name or the two together are
        throttled (the password is not even checked) and ``InvalidCredentials`` for an unknown
        name or a wrong password alike.
        """
        if self._checks.get(address, 0) >= self._checks_per_address:
            metrics.AUTH_LOGINS.labels("throttled").inc()
            raise TooManyAttempts(1)
        self._checks[address] = self._checks.get(address, 0) + 1
        try:
            return await self._login(request, address=address, device=device)
        finally:
            left = self._checks.pop(address) - 1
            if left:
                self._checks[address] = left

    async def _login(self, request: LoginRequest, *, address: str, device: str | None) -> SessionCreated:
        now = self._clock.now()
        wait = await self._throttle.charge(request.username, address, now)
        if wait is not None:
            metrics.AUTH_LOGINS.labels("throttled").inc()
            raise TooManyAttempts(wait)
        user = None
        if USERNAME_PATTERN.fullmatch(request.username):
            async with self.engine.connect() as conn:
                user = await repo.find_user_by_name_txn(conn, request.username)
        ok = await self._hasher.verify(request.password, user.password_hash if user else None)
        if not ok or user is None:
            log.info("login failed")
            metrics.AUTH_LOGINS.labels("invalid").inc()
            raise InvalidCredentials()
        now = self._clock.now()
        await self._throttle.succeeded(request.username, address, now)
        token = new_token(self._tokens)
        session_id = new_session_id(self._tokens)
        expires_at = now + self._ttl
        async with self.engine.begin() as conn:
            await repo.insert_session_txn(
                conn,
                session_id=session_id,
                token_hash=hash_token(token),
                user_id=user.id,
                created_at=now,
                expires_at=expires_at,
                device=device,
            )
        log.info("logged in", user_id=user.id, session_id=session_id)
        metrics.AUTH_LOGINS.labels("ok").inc()
        return SessionCreated(
            token=token,
            session_id=session_id,
            expires_at=repo.from_db(repo.to_db(expires_at)),
            user=UserRef(id=user.id, username=user.username),
        )

    async def check_token(self, token: str) -> SessionInfo:
        """The live session ``token`` belongs to; raises ``InvalidToken`` when there is none."""
        session = await self._live_session(token)
        metrics.AUTH_TOKEN_CHECKS.labels("invalid" if session is None else "ok").inc()
        if session is None:
            raise InvalidToken()
        return session

    async def _live_session(self, token: str) -> SessionInfo | None:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        wanted = hash_token(token)
        async with self.engine.connect() as conn:
            found = await repo.find_session_by_token_hash_txn(conn, wanted)
        if found is None or not same_hash(found.token_hash, wanted):
            return None
        now = self._clock.now()
        if found.revoked_at is not None or found.expires_at <= now:
            return None
        if found.last_seen_at is None or (now - found.last_seen_at).total_seconds() >= LAST_SEEN_EVERY_SECONDS:
            # A write at most once a minute per session, not on every check.
            async with self.engine.begin() as conn:
                await repo.touch_session_txn(conn, found.id, now, LAST_SEEN_EVERY_SECONDS)
        return SessionInfo(
            session_id=found.id,
            user=UserRef(id=found.user_id, username=found.username),
            expires_at=found.expires_at,
        )

    async def logout(self, session: SessionInfo) -> None:
        """Revoke the session at once, then tell the gateways to close its connections."""
        await self.revoke(session.user.id, only=session.session_id)

    async def sessions(self, session: SessionInfo) -> SessionList:
        """The user's live sessions, the current one marked."""
        async with self.engine.connect() as conn:
            rows = await repo.list_sessions_txn(conn, session.user.id, self._clock.now())
        return SessionList(sessions=[
            SessionPublic(session_id=row.id, device=row.device, created_at=row.created_at,
                          last_seen_at=row.last_seen_at, expires_at=row.expires_at,
                          current=row.id == session.session_id)
            for row in rows
        ])

    async def revoke(self, user_id: int, *, only: str | None = None, keep: str | None = None) -> list[str]:
        """End the user's live sessions (``only`` one, or all but ``keep``): the tokens are dead
        at once, and every gateway closes their connections (4401). Returns the ids ended; a
        session that is not the user's, or already ended, is simply not among them."""
        async with self.engine.begin() as conn:
            revoked = await repo.revoke_sessions_txn(conn, user_id, self._clock.now(), only=only, keep=keep)
            # An ended session's device goes with it: nobody encrypts for it any more.
            await delete_devices_txn(conn, revoked)
        for session_id in revoked:
            log.info("session revoked", user_id=user_id, session_id=session_id)
            metrics.AUTH_LOGOUTS.inc()
            await self._announce_revoked(user_id, session_id)
        return revoked

    async def change_password(self, session: SessionInfo, change: PasswordChange, *, address: str) -> None:
        """Set a new password when the old one is right; every other session of the user ends.

        Raises ``WrongPassword`` for a wrong old password (throttled like a login, so a
        stolen token is no way to guess it), ``TooManyAttempts`` while throttled and
        ``WeakPassword`` when the new one is refused.
        """
        user = await self.get_user_record(session.user.id)
        wait = await self._throttle.charge(user.username, address, self._clock.now())
        if wait is not None:
            raise TooManyAttempts(wait)
        if not await self._hasher.verify(change.old_password, user.password_hash):
            log.info("password change refused")
            raise WrongPassword()
        await self._throttle.succeeded(user.username, address, self._clock.now())
        problem = passwords.problem(change.new_password, user.username)
        if problem is None and change.new_password == change.old_password:
            problem = passwords.Problem("unchanged", "The new password must differ from the current one.")
        if problem is not None:
            raise WeakPassword(problem.message)
        new_hash = await self._hasher.hash(change.new_password)
        async with self.engine.begin() as conn:
            await repo.set_password_hash_txn(conn, user.id, new_hash)
        log.info("password changed", user_id=user.id)
        await self.revoke(user.id, keep=session.session_id)

    async def purge(self) -> int:
        """Delete expired and revoked sessions and forgotten throttle counters; how many rows."""
        now = self._clock.now()
        async with self.engine.begin() as conn:
            await purge_devices_txn(conn, now)
            gone = await repo.purge_sessions_txn(conn, now)
        return gone + await self._throttle.purge(now)

    async def _announce_revoked(self, user_id: int, session_id: str) -> None:
        if self._bus is None:
            return
        event = SessionRevoked(user_id=user_id, session_id=session_id)
        try:
            await self._bus.publish(routing.session_revoked(user_id), event)
        except BusUnavailable:
            # The token is already dead for every new check; only live connections linger
            # until they reconnect. Not worth failing the logout the user asked for.
            log.warning("session revocation not broadcast", session_id=session_id)

    async def get_user_record(self, user_id: int) -> repo.UserRecord:
        async with self.engine.connect() as conn:
            user = await repo.get_user_txn(conn, user_id)
        if user is None:
            raise InvalidToken()
        return user

    async def get_user(self, user_id: int) -> UserPublic:
        """The user behind a live session; ``InvalidToken`` if the account vanished meanwhile."""
        async with self.engine.connect() as conn:
            user = await repo.get_user_txn(conn, user_id)
        if user is None:
            raise InvalidToken()
        return UserPublic(id=user.id, username=user.username, created_at=user.created_at)

    async def directory(self, after_id: int, limit: int) -> UserPage:
        """Users with id > ``after_id``, ``limit`` at most (the caller has capped it)."""
        async with self.engine.connect() as conn:
            rows = await repo.list_users_txn(conn, after_id, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return UserPage(
            users=[UserRef(id=user_id, username=name) for user_id, name in rows],
            next_after_id=rows[-1][0] if more else None,
        )
