"""Sessions people control: list, revoke one, log out everywhere, change the password; each
ends the session's WebSockets on the gateway; expired and revoked sessions are purged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from chase import routing
from chase.bus import Delivery, QueueSpec
from chase.bus.memory import MemoryBus
from chase.clock import FakeClock
from chase.store.tables import sessions
from chase.tls import client_context
from services.auth.app import create_app
from services.auth.settings import AuthSettings
from tests.helpers import wait_until
from tests.integration.system import System

pytestmark = pytest.mark.timeout(60)
PASSWORD = "correct horse battery"


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
async def app(migrated_engine, clock: FakeClock, bus: MemoryBus):  # noqa: ANN001, ANN201
    return create_app(AuthSettings(bcrypt_rounds=4), engine=migrated_engine, bus=bus, clock=clock)


@pytest.fixture
async def api(app) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://auth.test") as client:
        yield client


async def login(api: httpx.AsyncClient, name: str = "alice", password: str = PASSWORD, **extra: str) -> dict:
    response = await api.post("/api/v1/sessions", json={"username": name, "password": password, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def alive(api: httpx.AsyncClient, token: str) -> bool:
    return (await api.get("/api/v1/sessions/current", headers=bearer(token))).status_code == 200


@pytest.fixture
async def revocations(bus: MemoryBus) -> list:
    seen: list = []

    async def keep(delivery: Delivery) -> None:
        seen.append(delivery.event)
        await delivery.ack()

    await bus.consume(QueueSpec("revoked", bindings=(routing.session_revoked(1),)), keep)
    return seen


async def test_list_revoke_one_and_log_out_everywhere(api: httpx.AsyncClient, clock: FakeClock,
                                                     revocations: list) -> None:
    await api.post("/api/v1/users", json={"username": "alice", "password": PASSWORD})
    laptop = await login(api, device="laptop")
    clock.advance(120)
    phone = await login(api, device="phone")
    clock.advance(120)
    tablet = (await api.post("/api/v1/sessions", json={"username": "alice", "password": PASSWORD},
                             headers={"User-Agent": "chase-tablet/1.0\x1b[31m"})).json()
    listed = (await api.get("/api/v1/sessions", headers=bearer(laptop["token"]))).json()["sessions"]
    assert [(s["device"], s["current"]) for s in listed] == [
        ("chase-tablet/1.0[31m", False), ("phone", False), ("laptop", True)]
    assert all("token" not in s and "token_hash" not in s for s in listed)
    assert listed[2]["last_seen_at"] == "2026-03-01T12:04:00Z"  # this very request

    # Revoke the lost phone from the laptop.
    gone = await api.delete(f"/api/v1/sessions/{phone['session_id']}", headers=bearer(laptop["token"]))
    assert gone.status_code == 204
    assert not await alive(api, phone["token"]) and await alive(api, laptop["token"])
    again = await api.delete(f"/api/v1/sessions/{phone['session_id']}", headers=bearer(laptop["token"]))
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"

    # Log out everywhere.
    assert (await api.delete("/api/v1/sessions", headers=bearer(tablet["token"]))).status_code == 204
    assert not await alive(api, laptop["token"]) and not await alive(api, tablet["token"])
    await wait_until(lambda: len(revocations) == 3)
    assert {e.session_id for e in revocations} == {phone["session_id"], laptop["session_id"], tablet["session_id"]}


async def test_nobody_revokes_a_session_that_is_not_theirs(api: httpx.AsyncClient) -> None:
    for name in ("alice", "mallory"):
        await api.post("/api/v1/users", json={"username": name, "password": PASSWORD})
    alice, mallory = await login(api, "alice"), await login(api, "mallory")
    response = await api.delete(f"/api/v1/sessions/{alice['session_id']}", headers=bearer(mallory["token"]))
    assert response.status_code == 404
    assert await alive(api, alice["token"])
    listed = (await api.get("/api/v1/sessions", headers=bearer(mallory["token"]))).json()["sessions"]
    assert [s["session_id"] for s in listed] == [mallory["session_id"]]


async def test_change_password_needs_the_old_one_and_ends_every_other_session(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/users", json={"username": "alice", "password": PASSWORD})
    here, elsewhere = await login(api), await login(api)
    url, headers = "/api/v1/users/me/password", bearer(here["token"])
    wrong = await api.put(url, json={"old_password": "not it at all", "new_password": "a new passphrase"},
                          headers=headers)
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "invalid_credentials"
    weak = await api.put(url, json={"old_password": PASSWORD, "new_password": "password1"}, headers=headers)
    assert weak.status_code == 422
    same = await api.put(url, json={"old_password": PASSWORD, "new_password": PASSWORD}, headers=headers)
    assert same.status_code == 422
    assert await alive(api, elsewhere["token"])
    ok = await api.put(url, json={"old_password": PASSWORD, "new_password": "a new passphrase"}, headers=headers)
    assert ok.status_code == 204
    assert await alive(api, here["token"]) and not await alive(api, elsewhere["token"])
    assert (await api.post("/api/v1/sessions", json={"username": "alice", "password": PASSWORD})).status_code == 401
    await login(api, password="a new passphrase")


async def test_expired_and_revoked_sessions_are_purged(app, api: httpx.AsyncClient, clock: FakeClock,  # noqa: ANN001
                                                        migrated_engine) -> None:  # noqa: ANN001
    await api.post("/api/v1/users", json={"username": "alice", "password": PASSWORD})
    old, revoked, live = await login(api), await login(api), await login(api)
    await api.delete("/api/v1/sessions/current", headers=bearer(revoked["token"]))
    async with migrated_engine.begin() as conn:
        await conn.execute(sa.update(sessions).where(sessions.c.id == old["session_id"])
                           .values(expires_at=datetime(2026, 3, 1, 11, 0)))
    await app.state.auth_service.purge()
    async with migrated_engine.connect() as conn:
        left = [row.id for row in await conn.execute(sa.select(sessions.c.id))]
    assert left == [live["session_id"]]


async def test_revoking_from_another_device_closes_the_websockets(system: System) -> None:
    alice_phone = await system.login("alice")
    alice_laptop = await system.login("alice", register=False)
    async with system.client(alice_phone.token) as phone, system.client(alice_laptop.token) as laptop:
        await phone.expect("hello")
        await laptop.expect("hello")
        async with httpx.AsyncClient(base_url=system.auth_url, verify=client_context(system.ca_path)) as http:
            response = await http.delete(f"/api/v1/sessions/{alice_phone.session_id}",
                                         headers=bearer(alice_laptop.token))
            assert response.status_code == 204
            assert await phone.closed(timeout=5) == (4401, "session revoked")
            await laptop.send_frame(type="ping", request_id="p")
            assert (await laptop.expect("pong")).request_id == "p"
            response = await http.put("/api/v1/users/me/password", headers=bearer(alice_laptop.token),
                                      json={"old_password": "correct horse battery staple",
                                            "new_password": "another good passphrase"})
            assert response.status_code == 204
    alice_tablet = await system.login("alice", "another good passphrase", register=False)
    async with system.client(alice_tablet.token) as tablet:
        await tablet.expect("hello")
        async with httpx.AsyncClient(base_url=system.auth_url, verify=client_context(system.ca_path)) as http:
            assert (await http.delete("/api/v1/sessions", headers=bearer(alice_tablet.token))).status_code == 204
        assert await tablet.closed(timeout=5) == (4401, "session revoked")
