"""The rooms part of the HTTP API, in the whole system (both deployments): list, members,
create, with the API's error conventions."""

from __future__ import annotations

import httpx
import pytest

from chase.tls import client_context
from tests.integration.system import System

pytestmark = pytest.mark.timeout(60)


async def test_create_list_and_members_over_http(system: System) -> None:
    alice, bob = await system.login("alice"), await system.login("bob")
    async with httpx.AsyncClient(base_url=system.auth_url, verify=client_context(system.ca_path)) as http:
        as_alice = {"Authorization": f"Bearer {alice.token}"}
        as_bob = {"Authorization": f"Bearer {bob.token}"}
        async with system.client(alice.token) as ws:
            await ws.expect("hello")
            created = await http.post("/api/v1/rooms", json={"name": "Crew", "topic": "hi", "open": True},
                                      headers=as_alice)
            assert created.status_code == 201, created.text
            room = created.json()
            assert (room["name"], room["role"], room["owner"]["id"], room["open"]) == ("Crew", "owner", alice.user.id, True)
            # The creator's open connection hears of it and is routed the room at once.
            event = await ws.expect("message", lambda f: f.message.room_id == room["id"])
            assert event.message.event.action == "created"

        mine = await http.get("/api/v1/rooms", headers=as_alice)
        assert [r["id"] for r in mine.json()["rooms"]] == [room["id"]]
        assert (await http.get("/api/v1/rooms", headers=as_bob)).json() == {"rooms": []}
        members = await http.get(f"/api/v1/rooms/{room['id']}/members", headers=as_alice)
        assert members.json() == {"room_id": room["id"], "members": [
            {"user": {"id": alice.user.id, "username": "alice"}, "role": "owner"}]}

        # Not a member and no such room: the same 404.
        other = await http.get(f"/api/v1/rooms/{room['id']}/members", headers=as_bob)
        missing = await http.get(f"/api/v1/rooms/{room['id'] + 1000}/members", headers=as_bob)
        assert other.status_code == missing.status_code == 404
        assert other.json() == missing.json()
        assert other.json()["error"]["code"] == "room_not_found"

        blank = await http.post("/api/v1/rooms", json={"name": "  "}, headers=as_alice)
        assert blank.status_code == 422 and blank.json()["error"]["code"] == "room_name_invalid"
        long_topic = await http.post("/api/v1/rooms", json={"name": "x", "topic": "t" * 301}, headers=as_alice)
        assert long_topic.status_code == 422 and long_topic.json()["error"]["code"] == "room_topic_too_long"
        bad = await http.post("/api/v1/rooms", json={"name": "x", "history": "forever"}, headers=as_alice)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"
        anonymous = await http.get("/api/v1/rooms")
        assert anonymous.status_code == 401
        assert "/api/v1/rooms" in (await http.get("/openapi.json")).json()["paths"]
