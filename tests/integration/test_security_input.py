"""Hostile input over real sockets on the embedded default (SQLite): ids past 64 bits,
1,000-deep JSON, lone surrogates and invisible bodies get documented refusals, never
``internal``, a 500 or a closed connection, and nobody else waits for them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from chase.schemas import MAX_ID
from chase.tls import client_context
from tests.integration.system import System, running_system

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def embedded(sqlite_url: str, dev_certs: Path) -> AsyncIterator[System]:
    async with running_system(sqlite_url, certs_dir=dev_certs) as system:
        yield system


@pytest.fixture
async def http(embedded: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=embedded.auth_url, verify=client_context(embedded.ca_path)) as client:
        yield client


async def test_out_of_range_ids_in_frames_are_invalid_and_nobody_waits(embedded: System) -> None:
    alice, bob = await embedded.login("alice"), await embedded.login("bob")
    async with embedded.client(alice.token) as a, embedded.client(bob.token) as b:
        await a.expect("hello")
        await b.expect("hello")
        poison = [
            {"type": "send", "client_msg_id": f"p{i}", "recipient_id": MAX_ID + 1 + i, "body": "x"} for i in range(30)
        ]
        poison += [{"type": "history", "request_id": "h", "with_user_id": 2**63},
                   {"type": "history", "request_id": "h2", "before_id": 2**64},
                   {"type": "sync", "request_id": "s", "after_id": 2**63}]
        for frame in poison:
            await a.send(json.dumps(frame))
        for _ in poison:
            error = await a.expect("error")
            assert error.code == "invalid_frame", error
        # Bob's message is stored and acked as if nothing happened.
        await b.send_frame(type="send", client_msg_id="b1", body="still here")
        ack = await b.expect("ack")
        assert ack.client_msg_id == "b1"
        # The largest id is a well-formed (if unknown) recipient: a documented rejection.
        await a.send_frame(type="send", client_msg_id="max", recipient_id=MAX_ID, body="hi")
        rejected = await a.expect("error", lambda f: f.client_msg_id == "max")
        assert rejected.code == "recipient_unknown"
        await a.send_frame(type="sync", request_id="s-max", after_id=MAX_ID)
        page = await a.expect("sync_page")
        assert page.messages == [] and not page.has_more


async def test_deep_json_surrogates_and_invisible_bodies_keep_the_connection(embedded: System) -> None:
    alice = await embedded.login("alice")
    async with embedded.client(alice.token) as a:
        await a.expect("hello")
        await a.send("[" * 1000 + "]" * 1000)
        error = await a.expect("error")
        assert error.code == "invalid_frame" and "recursion" in error.message
        await a.send('{"type":"send","client_msg_id":"s1","body":"\\ud800"}')
        assert (await a.expect("error")).code == "invalid_frame"
        await a.send_frame(type="send", client_msg_id="z1", body="\u200b\u200d\ufeff ")
        error = await a.expect("error")
        assert (error.code, error.client_msg_id) == ("body_empty", "z1")
        await a.send_frame(type="ping", request_id="still-open")
        assert (await a.expect("pong")).request_id == "still-open"


@pytest.mark.parametrize("query", [f"after_id={2**63}", f"after_id={2**70}", "after_id=-1", f"limit={2**63}",
                                   "limit=0", "after_id=abc"])
async def test_directory_query_out_of_range_is_422(embedded: System, http: httpx.AsyncClient, query: str) -> None:
    login = await embedded.login(f"u{uuid.uuid4().hex[:8]}")
    response = await http.get(f"/api/v1/users?{query}", headers={"Authorization": f"Bearer {login.token}"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_failed"


async def test_directory_at_the_largest_id_is_an_empty_page(embedded: System, http: httpx.AsyncClient) -> None:
    login = await embedded.login("alice")
    response = await http.get(f"/api/v1/users?after_id={MAX_ID}", headers={"Authorization": f"Bearer {login.token}"})
    assert response.status_code == 200
    assert response.json() == {"users": [], "next_after_id": None}


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/sessions"])
@pytest.mark.parametrize("body", ['{"username":"alice","password":"abc\\ud800defgh"}',
                                  '{"username":"al\\udc00ice","password":"abcdefgh12"}',
                                  '{"username":"alice","password":' + "[" * 1000 + "]" * 1000 + "}"])
async def test_surrogates_and_deep_json_in_bodies_are_4xx(http: httpx.AsyncClient, path: str, body: str) -> None:
    response = await http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] in ("validation_failed", "malformed_json")


@pytest.mark.parametrize("name", ["...", "-x", "-rf", "a..b"])
async def test_names_like_punctuation_or_options_are_refused(http: httpx.AsyncClient, name: str) -> None:
    response = await http.post("/api/v1/users", json={"username": name, "password": "a fine passphrase"})
    assert response.status_code == 422
    assert "starts and ends with a letter or digit" in response.text
