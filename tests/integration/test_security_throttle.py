"""Login throttling that holds, on SQLite and MariaDB: atomic under concurrency, per address
and per name, shared by every auth process, a delay and never a lock aimed at the owner."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest

from chase.clock import FakeClock
from chase.store.engine import create_engine
from services.auth.app import create_app
from services.auth.settings import AuthSettings

pytestmark = pytest.mark.timeout(60)
SESSIONS = "/api/v1/sessions"
PASSWORD = "correct horse battery"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@asynccontextmanager
async def client(engine, clock: FakeClock, address: str = "198.51.100.7", **settings: object  # noqa: ANN001
                 ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(AuthSettings(bcrypt_rounds=4, **settings), engine=engine, clock=clock)
    transport = httpx.ASGITransport(app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://auth.test") as http:
        yield http


async def attempt(http: httpx.AsyncClient, name: str, password: str = "wrong guess", **headers: str) -> int:
    response = await http.post(SESSIONS, json={"username": name, "password": password}, headers=headers)
    if response.status_code == 429:
        assert int(response.headers["Retry-After"]) >= 1
    return response.status_code


async def register(engine, clock: FakeClock, *names: str) -> None:  # noqa: ANN001
    async with client(engine, clock) as http:
        for name in names:
            response = await http.post("/api/v1/users", json={"username": name, "password": PASSWORD})
            assert response.status_code == 201, response.text


async def test_100_concurrent_guesses_for_one_name_are_not_all_answered(migrated_engine, clock) -> None:  # noqa: ANN001
    await register(migrated_engine, clock, "alice")
    async with client(migrated_engine, clock) as http:
        statuses = Counter(await asyncio.gather(*(attempt(http, "alice") for _ in range(100))))
    # 4 free failures for one name from one address, then the 5th sets a delay: at most 5
    # guesses are checked, whatever the interleaving.
    assert statuses[401] <= 5, statuses
    assert statuses[429] >= 95, statuses
    assert set(statuses) <= {401, 429}


async def test_spraying_many_names_from_one_client_is_slowed(migrated_engine, clock) -> None:  # noqa: ANN001
    await register(migrated_engine, clock, "alice")
    async with client(migrated_engine, clock, address="203.0.113.9") as attacker:
        statuses = Counter([await attempt(attacker, f"user{i}") for i in range(160)])
    assert statuses[401] <= 21, statuses  # 20 free failures per address, then a growing delay
    # The owner, elsewhere, logs in at once.
    async with client(migrated_engine, clock, address="192.0.2.1") as owner:
        assert await attempt(owner, "alice", PASSWORD) == 201


async def test_one_attacking_client_never_delays_the_owner(migrated_engine, clock) -> None:  # noqa: ANN001
    await register(migrated_engine, clock, "alice")
    async with client(migrated_engine, clock, address="203.0.113.9") as attacker:
        statuses = Counter([await attempt(attacker, "alice") for _ in range(50)])
        assert statuses[429] >= 45
        # The attacker's right guess is refused while it waits: the delay is per client.
        assert await attempt(attacker, "alice", PASSWORD) == 429
    async with client(migrated_engine, clock, address="192.0.2.1") as owner:
        assert await attempt(owner, "alice", PASSWORD) == 201


async def test_many_addresses_make_the_owner_wait_at_most_the_cap(migrated_engine, clock) -> None:  # noqa: ANN001
    await register(migrated_engine, clock, "alice")
    for i in range(40):
        async with client(migrated_engine, clock, address=f"203.0.113.{i + 1}") as bot:
            await attempt(bot, "alice")
    async with client(migrated_engine, clock, address="192.0.2.1") as owner:
        response = await owner.post(SESSIONS, json={"username": "alice", "password": PASSWORD})
        assert response.status_code == 429
        wait = int(response.headers["Retry-After"])
        assert 1 <= wait <= 30
        clock.advance(wait)
        assert await attempt(owner, "alice", PASSWORD) == 201


async def test_a_forged_forwarded_for_changes_nothing(migrated_engine, clock) -> None:  # noqa: ANN001
    await register(migrated_engine, clock, "alice")
    async with client(migrated_engine, clock, address="203.0.113.9") as attacker:
        statuses = Counter([
            await attempt(attacker, f"user{i}", **{"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"}) for i in range(60)
        ])
    assert statuses[401] <= 21, statuses


async def test_a_trusted_proxy_names_the_client(migrated_engine, clock) -> None:  # noqa: ANN001
    await register(migrated_engine, clock, "alice")
    async with client(migrated_engine, clock, address="127.0.0.1", trusted_proxies="127.0.0.1") as proxy:
        for i in range(30):
            await attempt(proxy, f"user{i}", **{"X-Forwarded-For": "203.0.113.9"})
        assert await attempt(proxy, "bob", **{"X-Forwarded-For": "203.0.113.9"}) == 429
        # Another client behind the same proxy is not throttled for it; a forged hop before
        # the real client changes nothing either (the right-most untrusted hop counts).
        assert await attempt(proxy, "alice", PASSWORD, **{"X-Forwarded-For": "192.0.2.1"}) == 201
        assert await attempt(proxy, "bob", **{"X-Forwarded-For": "192.0.2.77, 203.0.113.9"}) == 429


async def test_every_auth_process_shares_the_counters(database_url: str, migrated_engine, clock) -> None:  # noqa: ANN001
    await register(migrated_engine, clock, "alice")
    other_process = create_engine(database_url)
    try:
        async with client(migrated_engine, clock) as first, client(other_process, clock) as second:
            statuses = Counter([await attempt(first if i % 2 else second, "alice") for i in range(20)])
    finally:
        await other_process.dispose()
    assert statuses[401] == 5, statuses


async def test_quiet_counters_are_forgotten_and_purged(migrated_engine, clock) -> None:  # noqa: ANN001
    import sqlalchemy as sa

    from chase.store.tables import login_throttle
    from services.auth.throttle import LoginThrottle

    await register(migrated_engine, clock, "alice")
    async with client(migrated_engine, clock) as http:
        for _ in range(6):
            await attempt(http, "alice")
        clock.advance(3 * 3600)
        assert await attempt(http, "alice", PASSWORD) == 201
    async with migrated_engine.connect() as conn:
        stored = (await conn.execute(sa.select(login_throttle))).all()
    assert stored and all("alice" not in row.scope_key and "198.51" not in row.scope_key for row in stored)
    clock.advance(3 * 3600)
    assert await LoginThrottle(migrated_engine).purge(clock.now()) == len(stored)


async def test_a_flood_from_one_client_gets_few_password_checks_and_the_owner_gets_in(migrated_engine, clock  # noqa: ANN001
                                                                                     ) -> None:
    await register(migrated_engine, clock, "alice")
    app = create_app(AuthSettings(bcrypt_rounds=4), engine=migrated_engine, clock=clock)
    attacker = httpx.AsyncClient(transport=httpx.ASGITransport(app, client=("203.0.113.9", 1)), base_url="https://a")
    owner = httpx.AsyncClient(transport=httpx.ASGITransport(app, client=("192.0.2.1", 1)), base_url="https://a")
    async with attacker, owner:
        flood = asyncio.gather(*(attempt(attacker, f"user{i}") for i in range(100)))
        mine = await owner.post(SESSIONS, json={"username": "alice", "password": PASSWORD})
        statuses = Counter(await flood)
    assert mine.status_code == 201
    # At most two checks at once per address, and at most 20 failures before the delay.
    assert statuses[401] <= 20 and statuses[429] >= 80, statuses
