"""Login throttling shared by every auth process: counters in the database, a delay that grows.

Every login attempt is charged *before* its password is checked, in three scopes, in this
order:

- the client address (``address``): spraying many names from one client;
- the address and the name together (``pair``): one client guessing one account;
- the name alone (``account``): one account guessed from many addresses.

Each scope lets ``free`` failures through, then makes every further attempt wait a delay that
doubles from ``base_seconds`` up to ``cap_seconds``; a scope quiet for ``forget_seconds``
starts again from zero. An attempt refused in one scope is charged in no later one, so an
attacker blocked by address cannot push the account's counter up. A successful login clears
its pair and takes its own charge back from the address and the account.

The account scope has a low cap on purpose: it is the only one an attacker can aim at the
owner, and it can only make the owner wait (at most ``cap_seconds``), never lock them out. The
owner's own address and pair stay clean, so a single attacking client never delays them.

Charging is a compare-and-set on one row (``UPDATE ... WHERE failures = <read>``), so 100
concurrent guesses cannot all pass a check made before any of them counted: each one that
passes moves the counter, the next one sees it. Rows are created with the dialect's own
insert-if-absent. A row lost the race too often is answered as throttled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chase.store.tables import login_throttle

#: Compare-and-set attempts before an attempt is answered as throttled (heavy contention on
#: one row only happens under attack).
MAX_RACES = 8
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Scope:
    name: str
    free: int
    base_seconds: float
    cap_seconds: float
    forget_seconds: float

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure (0 while within the free ones)."""
        over = failures - self.free
        if over <= 0:
            return 0.0
        return min(self.cap_seconds, self.base_seconds * 2 ** min(over - 1, 40))


@dataclass(frozen=True)
class Policy:
    address: Scope
    pair: Scope
    account: Scope


def default_policy() -> Policy:
    return Policy(
        address=Scope("address", free=20, base_seconds=1.0, cap_seconds=900.0, forget_seconds=3600.0),
        pair=Scope("pair", free=4, base_seconds=1.0, cap_seconds=900.0, forget_seconds=3600.0),
        account=Scope("account", free=10, base_seconds=1.0, cap_seconds=30.0, forget_seconds=900.0),
    )


def naive(moment: datetime) -> datetime:
    """Naive UTC, as the database stores it."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def scope_key(scope: str, *parts: str) -> str:
    """What the row is keyed by: a hash, so no name or address is kept in clear."""
    text = "\x1f".join((scope, *parts))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class LoginThrottle:
    """Charge, refuse and forgive login attempts; the database holds the counters."""

    def __init__(self, engine: AsyncEngine, policy: Policy | None = None, *, remembered: int = 10_000) -> None:
        self._engine = engine
        self.policy = policy or default_policy()
        # Blocks this process has seen, so a flood from a blocked client is refused without a
        # database round trip. Never wrong: a block only ends with time (a success can only
        # follow an attempt that was let through, and only the pair row is deleted then).
        self._blocked: dict[str, datetime] = {}
        self._remembered = remembered

    def _keys(self, username: str, address: str) -> list[tuple[Scope, str]]:
        name = username.lower()
        p = self.policy
        return [
            (p.address, scope_key("address", address)),
            (p.pair, scope_key("pair", address, name)),
            (p.account, scope_key("account", name)),
        ]

    async def charge(self, username: str, address: str, now: datetime) -> float | None:
        """Count one attempt; None lets it through, a number is the seconds to wait (429).

        The caller must then check the password, and call :meth:`succeeded` if it was right.
        """
        now = naive(now)
        for scope, key in self._keys(username, address):
            wait = await self._charge_one(scope, key, now)
            if wait is not None:
                return wait
        return None

    async def succeeded(self, username: str, address: str, now: datetime) -> None:
        """The attempt was right: clear the pair, take the charge back elsewhere."""
        now = naive(now)
        (_, address_key), (_, pair_key), (_, account_key) = self._keys(username, address)
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(login_throttle).where(login_throttle.c.scope_key == pair_key))
            await conn.execute(
                sa.update(login_throttle)
                .where(login_throttle.c.scope_key.in_([address_key, account_key]), login_throttle.c.failures > 0)
                .values(failures=login_throttle.c.failures - 1, updated_at=now)
            )

    async def purge(self, now: datetime) -> int:
        """Forget rows quiet for longer than any scope remembers; returns how many."""
        longest = max(s.forget_seconds + s.cap_seconds for s in (self.policy.address, self.policy.pair,
                                                                   self.policy.account))
        horizon = naive(now) - timedelta(seconds=longest)
        async with self._engine.begin() as conn:
            result = await conn.execute(sa.delete(login_throttle).where(login_throttle.c.updated_at < horizon))
        return result.rowcount or 0

    def _remember(self, key: str, until: datetime, now: datetime) -> None:
        if len(self._blocked) >= self._remembered:
            self._blocked = {k: t for k, t in self._blocked.items() if t > now}
            if len(self._blocked) >= self._remembered:
                self._blocked.clear()
        self._blocked[key] = until

    async def _charge_one(self, scope: Scope, key: str, now: datetime) -> float | None:
        known = self._blocked.get(key)
        if known is not None and known > now:
            return (known - now).total_seconds()
        for _ in range(MAX_RACES):
            # Read, decide, then write only if nobody wrote in between (the UPDATE's WHERE):
            # no transaction is held open across the decision.
            async with self._engine.connect() as conn:
                row = await _read_txn(conn, key)
            if row is None:
                async with self._engine.begin() as conn:
                    await _insert_if_absent_txn(conn, key, now)
                continue
            failures, blocked_until, updated_at = row
            if blocked_until > now:
                self._remember(key, blocked_until, now)
                return (blocked_until - now).total_seconds()
            quiet = (now - updated_at).total_seconds() > scope.forget_seconds
            charged = (0 if quiet else failures) + 1
            until = now + timedelta(seconds=scope.delay(charged))
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    sa.update(login_throttle)
                    .where(
                        login_throttle.c.scope_key == key,
                        login_throttle.c.failures == failures,
                        login_throttle.c.blocked_until == blocked_until,
                    )
                    .values(failures=charged, blocked_until=until, updated_at=now)
                )
            if result.rowcount == 1:
                if until > now:
                    self._remember(key, until, now)
                return None
        return 1.0


async def _read_txn(conn: AsyncConnection, key: str) -> tuple[int, datetime, datetime] | None:
    row = (
        await conn.execute(
            sa.select(login_throttle.c.failures, login_throttle.c.blocked_until, login_throttle.c.updated_at).where(
                login_throttle.c.scope_key == key
            )
        )
    ).first()
    return None if row is None else (row.failures, naive(row.blocked_until), naive(row.updated_at))


async def _insert_if_absent_txn(conn: AsyncConnection, key: str, now: datetime) -> None:
    values = {"scope_key": key, "failures": 0, "blocked_until": _EPOCH, "updated_at": now}
    if conn.dialect.name == "mysql":
        statement = mysql.insert(login_throttle).values(**values).prefix_with("IGNORE")
    else:
        statement = sqlite.insert(login_throttle).values(**values).on_conflict_do_nothing()
    await conn.execute(statement)
