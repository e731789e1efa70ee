"""Devices and keys in the auth API: publish signed identity keys and one-time keys, list a
user's devices, claim one-time keys (each exactly once, even under concurrent claims), and a
session that ends takes its device with it. On SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import vodozemac

from chase.clock import FakeClock
from chase.devicekeys import backup_payload, identity_payload
from services.auth.app import create_app
from services.auth.settings import AuthSettings

pytestmark = pytest.mark.timeout(90)
PASSWORD = "correct horse battery"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def api(migrated_engine, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    app = create_app(AuthSettings(bcrypt_rounds=4), engine=migrated_engine, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://auth.test") as client:
        yield client


async def login(api: httpx.AsyncClient, name: str) -> dict:
    await api.post("/api/v1/users", json={"username": name, "password": PASSWORD})
    response = await api.post("/api/v1/sessions", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(session: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['token']}"}


def device_upload(account: vodozemac.Account, session: dict, keys: int = 0) -> dict:
    curve, ed = account.curve25519_key.to_base64(), account.ed25519_key.to_base64()
    payload = identity_payload(session["user"]["id"], session["session_id"], curve, ed)
    otks = []
    if keys:
        account.generate_one_time_keys(keys)
        otks = [{"key_id": kid, "public_key": key.to_base64()} for kid, key in account.one_time_keys.items()]
        account.mark_keys_as_published()
    return {"curve25519": curve, "ed25519": ed, "signature": account.sign(payload).to_base64(), "one_time_keys": otks}


async def test_publish_list_and_claim(api: httpx.AsyncClient) -> None:
    alice, bob = await login(api, "alice"), await login(api, "bob")
    account = vodozemac.Account()
    upload = device_upload(account, alice, keys=3)
    answer = await api.put("/api/v1/devices/current", json=upload, headers=bearer(alice))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"one_time_keys": 3}
    # The same keys again: a no-op. Other identity keys for this device: refused.
    assert (await api.put("/api/v1/devices/current", json=upload, headers=bearer(alice))).json() == {"one_time_keys": 3}
    other = device_upload(vodozemac.Account(), alice)
    refused = await api.put("/api/v1/devices/current", json=other, headers=bearer(alice))
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "keys_conflict")

    listed = (await api.get(f"/api/v1/users/{alice['user']['id']}/devices", headers=bearer(bob))).json()["devices"]
    assert [(d["device_id"], d["curve25519"], d["ed25519"]) for d in listed] == [
        (alice["session_id"], upload["curve25519"], upload["ed25519"])
    ]
    claimed = set()
    for _ in range(3):
        got = await api.post(f"/api/v1/devices/{alice['session_id']}/one-time-keys/claim", headers=bearer(bob))
        assert got.status_code == 200, got.text
        claimed.add(got.json()["key_id"])
    assert len(claimed) == 3
    empty = await api.post(f"/api/v1/devices/{alice['session_id']}/one-time-keys/claim", headers=bearer(bob))
    assert (empty.status_code, empty.json()["error"]["code"]) == (404, "no_one_time_key")
    assert (await api.get("/api/v1/devices/current/one-time-keys", headers=bearer(alice))).json() == {"one_time_keys": 0}


async def test_a_forged_signature_is_refused(api: httpx.AsyncClient) -> None:
    alice = await login(api, "alice")
    upload = device_upload(vodozemac.Account(), alice)
    # Signed by another key than the one published: the server says so.
    upload["signature"] = vodozemac.Account().sign(b"anything").to_base64()
    refused = await api.put("/api/v1/devices/current", json=upload, headers=bearer(alice))
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_signature")
    # One-time keys need a device first.
    keys = {"one_time_keys": [{"key_id": "AAAA", "public_key": upload["curve25519"]}]}
    missing = await api.post("/api/v1/devices/current/one-time-keys", json=keys, headers=bearer(alice))
    assert (missing.status_code, missing.json()["error"]["code"]) == (409, "device_keys_missing")


async def test_concurrent_claims_never_share_a_key(api: httpx.AsyncClient) -> None:
    alice, bob = await login(api, "alice"), await login(api, "bob")
    account = vodozemac.Account()
    assert (await api.put("/api/v1/devices/current", json=device_upload(account, alice, keys=20),
                          headers=bearer(alice))).status_code == 200
    url = f"/api/v1/devices/{alice['session_id']}/one-time-keys/claim"
    answers = await asyncio.gather(*(api.post(url, headers=bearer(bob)) for _ in range(30)))
    ok = [a.json()["key_id"] for a in answers if a.status_code == 200]
    assert sorted(a.status_code for a in answers) == [200] * 20 + [404] * 10
    assert len(set(ok)) == 20


async def test_ending_a_session_removes_its_device(api: httpx.AsyncClient) -> None:
    alice1, alice2 = await login(api, "alice"), await login(api, "alice")
    for session in (alice1, alice2):
        assert (await api.put("/api/v1/devices/current", json=device_upload(vodozemac.Account(), session, keys=2),
                              headers=bearer(session))).status_code == 200
    url = f"/api/v1/users/{alice1['user']['id']}/devices"
    assert len((await api.get(url, headers=bearer(alice1))).json()["devices"]) == 2
    assert (await api.delete("/api/v1/sessions/current", headers=bearer(alice2))).status_code == 204
    left = (await api.get(url, headers=bearer(alice1))).json()["devices"]
    assert [d["device_id"] for d in left] == [alice1["session_id"]]
    gone = await api.post(f"/api/v1/devices/{alice2['session_id']}/one-time-keys/claim", headers=bearer(alice1))
    assert gone.status_code == 404


async def test_key_backup_is_signed_by_a_device(api: httpx.AsyncClient) -> None:
    alice, bob = await login(api, "alice"), await login(api, "bob")
    account = vodozemac.Account()
    await api.put("/api/v1/devices/current", json=device_upload(account, alice), headers=bearer(alice))
    backup = vodozemac.PkDecryption().public_key.to_base64()
    signature = account.sign(backup_payload(alice["user"]["id"], backup)).to_base64()
    stored = await api.put("/api/v1/users/me/key-backup", json={"public_key": backup, "signature": signature},
                           headers=bearer(alice))
    assert stored.status_code == 200, stored.text
    seen = (await api.get(f"/api/v1/users/{alice['user']['id']}/key-backup", headers=bearer(bob))).json()
    assert (seen["public_key"], seen["signer_ed25519"]) == (backup, account.ed25519_key.to_base64())
    forged = await api.put("/api/v1/users/me/key-backup", json={"public_key": backup, "signature": "A" * 86},
                           headers=bearer(alice))
    assert forged.json()["error"]["code"] == "invalid_signature"
    none = await api.get(f"/api/v1/users/{bob['user']['id']}/key-backup", headers=bearer(alice))
    assert none.status_code == 404
