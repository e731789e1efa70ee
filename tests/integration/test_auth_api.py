"""The auth HTTP API against a real database (every test runs on SQLite and on MariaDB)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from chase import routing
from chase.bus import Delivery, QueueSpec
from chase.bus.memory import MemoryBus
from chase.clock import FakeClock, SecureTokens
from chase.schemas import SessionRevoked
from chase.store.engine import create_engine
from chase.store.tables import sessions, users
from services.auth.app import create_app
from services.auth.security import hash_token
from services.auth.settings import AuthSettings
from tests.helpers import unused_port, wait_until

USERS = "/api/v1/users"
SESSIONS = "/api/v1/sessions"
CURRENT = "/api/v1/sessions/current"
PASSWORD = "correct horse"


def make_settings(**overrides: object) -> AuthSettings:
    values: dict[str, object] = {"bcrypt_rounds": 4, "directory_page_max": 3, "directory_page_default": 2}
    values.update(overrides)
    return AuthSettings(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus("test")
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def api(migrated_engine, clock: FakeClock, bus: MemoryBus) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    app = create_app(make_settings(), engine=migrated_engine, bus=bus, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://auth.test") as client:
        yield client


async def count(engine, table: sa.Table) -> int:  # noqa: ANN001
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()


async def register(api: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict:
    response = await api.post(USERS, json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return response.json()


async def login(api: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict:
    response = await api.post(SESSIONS, json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in response.text
    return error


# --- the happy paths ------------------------------------------------------------------------


async def test_register_returns_the_public_user_only(api, migrated_engine) -> None:  # noqa: ANN001
    body = await register(api, "Alice")
    assert set(body) == {"id", "username", "created_at"}
    assert body["username"] == "Alice"
    assert body["created_at"].startswith("2026-03-01T12:00:00")
    async with migrated_engine.connect() as conn:
        row = (await conn.execute(sa.select(users))).one()
    assert row.username_lower == "alice"
    assert row.password_hash.startswith("sha256$$2") and PASSWORD not in row.password_hash


async def test_name_taken_in_another_letter_case(api, migrated_engine) -> None:  # noqa: ANN001
    await register(api, "Alice")
    response = await api.post(USERS, json={"username": "aLICE", "password": PASSWORD})
    assert_error(response, 409, "username_taken")
    assert await count(migrated_engine, users) == 1


async def test_login_gives_a_token_stored_only_as_its_hash(api, migrated_engine, clock) -> None:  # noqa: ANN001
    user = await register(api, "alice")
    session = await login(api, "ALICE")  # logging in ignores letter case too
    assert session["user"] == {"id": user["id"], "username": "alice"}
    assert len(session["token"]) >= 43  # 32 random bytes, url-safe base64
    assert datetime.fromisoformat(session["expires_at"]) == datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
    async with migrated_engine.connect() as conn:
        row = (await conn.execute(sa.select(sessions))).one()
    assert row.token_hash == hash_token(session["token"])
    assert row.id == session["session_id"]

    check = await api.get(CURRENT, headers=bearer(session["token"]))
    assert check.status_code == 200
    assert check.json() == {
        "session_id": session["session_id"],
        "user": {"id": user["id"], "username": "alice"},
        "expires_at": session["expires_at"],
    }


async def test_unknown_user_and_wrong_password_look_the_same(api, migrated_engine) -> None:  # noqa: ANN001
    await register(api, "alice")
    wrong = await api.post(SESSIONS, json={"username": "alice", "password": "not the password"})
    unknown = await api.post(SESSIONS, json={"username": "nobody", "password": "not the password"})
    assert_error(wrong, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert wrong.status_code == unknown.status_code
    assert await count(migrated_engine, sessions) == 0


async def test_logout_kills_the_token_and_tells_the_gateways(api, bus: MemoryBus) -> None:  # noqa: ANN001
    user = await register(api, "alice")
    session = await login(api, "alice")
    other = await login(api, "alice")
    seen: list[SessionRevoked] = []

    async def collect(delivery: Delivery) -> None:
        seen.append(delivery.event)
        await delivery.ack()

    await bus.consume(QueueSpec("gateway.g1", bindings=routing.user_bindings(user["id"]), durable=False), collect)

    response = await api.delete(CURRENT, headers=bearer(session["token"]))
    assert response.status_code == 204 and response.content == b""
    assert_error(await api.get(CURRENT, headers=bearer(session["token"])), 401, "invalid_token")
    assert_error(await api.delete(CURRENT, headers=bearer(session["token"])), 401, "invalid_token")
    # The user's other session lives on.
    assert (await api.get(CURRENT, headers=bearer(other["token"]))).status_code == 200

    await wait_until(lambda: seen)
    assert seen == [SessionRevoked(user_id=user["id"], session_id=session["session_id"])]


async def test_expired_token_is_refused(api, clock: FakeClock) -> None:  # noqa: ANN001
    await register(api, "alice")
    session = await login(api, "alice")
    clock.advance(30 * 24 * 3600 - 1)
    assert (await api.get(CURRENT, headers=bearer(session["token"]))).status_code == 200
    clock.advance(1)
    error = assert_error(await api.get(CURRENT, headers=bearer(session["token"])), 401, "invalid_token")
    assert "expired" in error["message"]


async def test_me(api) -> None:  # noqa: ANN001
    user = await register(api, "alice")
    session = await login(api, "alice")
    response = await api.get(f"{USERS}/me", headers=bearer(session["token"]))
    assert response.status_code == 200
    assert response.json() == user


async def test_directory_pages_by_id_with_a_capped_limit(api) -> None:  # noqa: ANN001
    names = ["alice", "bob", "carol", "dave", "erin"]
    ids = [(await register(api, name))["id"] for name in names]
    token = (await login(api, "alice"))["token"]

    seen: list[dict] = []
    after_id = 0
    while True:
        # limit=1000 is capped at directory_page_max=3.
        page = await api.get(USERS, params={"after_id": after_id, "limit": 1000}, headers=bearer(token))
        assert page.status_code == 200
        body = page.json()
        assert len(body["users"]) <= 3
        seen.extend(body["users"])
        if body["next_after_id"] is None:
            break
        after_id = body["next_after_id"]
    assert seen == [{"id": i, "username": n} for i, n in zip(ids, names, strict=True)]

    default = (await api.get(USERS, headers=bearer(token))).json()
    assert default == {"users": seen[:2], "next_after_id": ids[1]}
    last = (await api.get(USERS, params={"after_id": ids[-1]}, headers=bearer(token))).json()
    assert last == {"users": [], "next_after_id": None}
    assert_error(await api.get(USERS), 401, "missing_token")


async def test_directory_rejects_bad_query_parameters(api) -> None:  # noqa: ANN001
    await register(api, "alice")
    token = (await login(api, "alice"))["token"]
    for params in ({"after_id": -1}, {"limit": 0}, {"limit": "many"}):
        error = assert_error(await api.get(USERS, params=params, headers=bearer(token)), 422, "validation_failed")
        assert error["fields"][0]["field"].startswith("query.")


async def test_unicode_passwords_round_trip(api) -> None:  # noqa: ANN001
    password = "pässwörd 🔐 שלום é"  # combining accent, emoji, right-to-left
    await register(api, "alice", password)
    await login(api, "alice", password)
    response = await api.post(SESSIONS, json={"username": "alice", "password": password.replace("🔐", "🔑")})
    assert_error(response, 401, "invalid_credentials")


async def test_healthz_and_docs(api) -> None:  # noqa: ANN001
    health = await api.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    schema = await api.get("/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/sessions/current" in schema.json()["paths"]
    assert (await api.get("/docs")).status_code == 200


# --- throttling -----------------------------------------------------------------------------


async def test_failed_logins_are_throttled_with_a_growing_delay(api, clock: FakeClock) -> None:  # noqa: ANN001
    await register(api, "alice")
    await register(api, "bob")
    for _ in range(4):  # the free failures for one name from one address
        wrong = await api.post(SESSIONS, json={"username": "alice", "password": "guess guess"})
        assert_error(wrong, 401, "invalid_credentials")
    wrong = await api.post(SESSIONS, json={"username": "alice", "password": "guess guess"})
    assert_error(wrong, 401, "invalid_credentials")  # the 5th is answered, and sets a 1 s wait
    throttled = await api.post(SESSIONS, json={"username": "ALICE", "password": PASSWORD})
    assert_error(throttled, 429, "too_many_attempts")
    assert throttled.headers["Retry-After"] == "1"
    await login(api, "bob")  # another name is not affected

    clock.advance(1)
    await login(api, "alice")  # a delay, not a lock: the right password works once it passed


# --- bad input ------------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
BAD_BODIES = [
    pytest.param(b'{"username": "alice", "password": ', JSON, 400, "malformed_json", id="malformed-json"),
    pytest.param(b'{"username": "alice"}', JSON, 422, "validation_failed", id="missing-field"),
    pytest.param(json.dumps({"username": "alice", "password": PASSWORD, "admin": True}).encode(), JSON, 422,
                 "validation_failed", id="extra-field"),
    pytest.param(json.dumps({"username": "a" * 33, "password": PASSWORD}).encode(), JSON, 422,
                 "validation_failed", id="long-name"),
    pytest.param(json.dumps({"username": "al", "password": PASSWORD}).encode(), JSON, 422,
                 "validation_failed", id="short-name"),
    pytest.param(json.dumps({"username": "al ice", "password": PASSWORD}).encode(), JSON, 422,
                 "validation_failed", id="space-in-name"),
    pytest.param(json.dumps({"username": "alïce", "password": PASSWORD}).encode(), JSON, 422,
                 "validation_failed", id="non-ascii-name"),
    pytest.param(json.dumps({"username": "alice", "password": "short"}).encode(), JSON, 422,
                 "validation_failed", id="short-password"),
    pytest.param(json.dumps({"username": "alice", "password": "x" * 129}).encode(), JSON, 422,
                 "validation_failed", id="password-129-chars"),
    pytest.param(json.dumps({"username": "alice", "password": "🔐" * 129}).encode(), JSON, 422,
                 "validation_failed", id="password-129-emoji"),
    pytest.param(json.dumps({"username": 5, "password": PASSWORD}).encode(), JSON, 422,
                 "validation_failed", id="number-as-name"),
    pytest.param(b"[]", JSON, 422, "validation_failed", id="array-body"),
    pytest.param(b"", JSON, 422, "validation_failed", id="empty-body"),
    pytest.param(b'{"username": "al\xffice", "password": "correct horse"}', JSON, 400, "invalid_encoding",
                 id="non-utf8"),
    pytest.param(b"username=alice&password=correct+horse", {"Content-Type": "application/x-www-form-urlencoded"},
                 415, "unsupported_media_type", id="form-content-type"),
    pytest.param(json.dumps({"username": "alice", "password": PASSWORD}).encode(), {}, 415,
                 "unsupported_media_type", id="no-content-type"),
]


@pytest.mark.parametrize(("content", "headers", "status", "code"), BAD_BODIES)
async def test_bad_registration_is_refused_and_writes_nothing(  # noqa: PLR0913
    api, migrated_engine, content: bytes, headers: dict, status: int, code: str  # noqa: ANN001
) -> None:
    response = await api.post(USERS, content=content, headers=headers)
    error = assert_error(response, status, code)
    assert PASSWORD not in response.text  # the input is never echoed back
    assert await count(migrated_engine, users) == 0
    if status == 422 and content:
        assert error["fields"], error


async def test_validation_messages_are_readable(api) -> None:  # noqa: ANN001
    long_password = await api.post(USERS, json={"username": "alice", "password": "é" * 129})
    error = assert_error(long_password, 422, "validation_failed")
    assert error["fields"] == [{"field": "body.password", "message": error["fields"][0]["message"]}]
    assert "128 characters" in error["fields"][0]["message"]
    bad_name = assert_error(await api.post(USERS, json={"username": "x", "password": PASSWORD}), 422,
                            "validation_failed")
    assert "3 to 32 characters" in bad_name["message"]


@pytest.mark.parametrize(("content", "headers", "status", "code"), BAD_BODIES[:2] + BAD_BODIES[-3:])
async def test_bad_login_is_refused_and_writes_nothing(  # noqa: PLR0913
    api, migrated_engine, content: bytes, headers: dict, status: int, code: str  # noqa: ANN001
) -> None:
    await register(api, "alice")
    response = await api.post(SESSIONS, content=content, headers=headers)
    assert_error(response, status, code)
    assert await count(migrated_engine, sessions) == 0


async def test_login_with_an_over_long_password_is_a_clear_422(api) -> None:  # noqa: ANN001
    await register(api, "alice")
    response = await api.post(SESSIONS, json={"username": "alice", "password": PASSWORD + "x" * 128})
    assert "128 characters" in assert_error(response, 422, "validation_failed")["message"]


async def test_every_character_of_a_long_password_counts(api) -> None:  # noqa: ANN001
    # 100 two-byte characters: 200 bytes, far past bcrypt's 72; the pre-hash keeps them all.
    long = "é" * 99 + "a"
    await register(api, "alice", long)
    await login(api, "alice", long)
    wrong = await api.post(SESSIONS, json={"username": "alice", "password": "é" * 99 + "b"})
    assert_error(wrong, 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({}, "missing_token", id="missing"),
        pytest.param({"Authorization": "Basic YWxpY2U6cHc="}, "missing_token", id="other-scheme"),
        pytest.param({"Authorization": "Bearer forged-token-forged-token-forged-token-x"}, "invalid_token",
                     id="forged"),
        pytest.param({"Authorization": "Bearer " + "x" * 5000}, "invalid_token", id="huge"),
    ],
)
async def test_bad_tokens_are_401_with_a_bearer_challenge(api, headers: dict, code: str) -> None:  # noqa: ANN001
    await register(api, "alice")
    await login(api, "alice")
    for method, path in (("GET", CURRENT), ("DELETE", CURRENT), ("GET", f"{USERS}/me"), ("GET", USERS)):
        response = await api.request(method, path, headers=headers)
        assert_error(response, 401, code)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_routes_and_methods_answer_json(api) -> None:  # noqa: ANN001
    assert_error(await api.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(await api.put(USERS, json={}), 405, "method_not_allowed")


# --- failures on our side -------------------------------------------------------------------


class BrokenTokens(SecureTokens):
    def token(self, nbytes: int) -> str:
        raise RuntimeError("the entropy pool is on fire: secret detail")


async def test_an_unexpected_error_is_a_bare_500_and_writes_nothing(migrated_engine) -> None:  # noqa: ANN001
    app = create_app(make_settings(), engine=migrated_engine, tokens=BrokenTokens())
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://auth.test") as api:
        await register(api, "alice")
        response = await api.post(SESSIONS, json={"username": "alice", "password": PASSWORD})
    assert_error(response, 500, "internal")
    assert "secret detail" not in response.text and "RuntimeError" not in response.text
    assert await count(migrated_engine, sessions) == 0


async def test_unreachable_database_is_503_not_500() -> None:
    engine = create_engine(f"mysql+aiomysql://root@127.0.0.1:{unused_port()}/nothing")
    app = create_app(make_settings(), engine=engine)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://auth.test") as api:
            health = await api.get("/healthz")
            assert health.status_code == 503 and health.json() == {"status": "unavailable"}
            response = await api.post(USERS, json={"username": "alice", "password": PASSWORD})
            assert_error(response, 503, "unavailable")
    finally:
        await engine.dispose()
