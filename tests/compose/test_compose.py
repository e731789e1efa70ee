"""`docker compose up` on a real Docker engine: the topology of docker-compose.yml, reached the
way users reach it (the auth API and the load balancer on 127.0.0.1, TLS verified against the
development CA the `certs` one-shot made).

Users register, learn the gateway address from the auth API, and talk in public and in private
through HAProxy, which spreads them over both gateways; services are restarted under load one
by one, and nothing acknowledged is lost or doubled.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import connect

from chase.schemas import MessageFrame
from chase.tls import client_context
from tests.compose.stack import Stack
from tests.integration.system import TestClient

pytestmark = pytest.mark.timeout(900)
PASSWORD = "correct horse battery staple"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def _user(stack: Stack, name: str) -> tuple[int, str]:
    async with httpx.AsyncClient(base_url=stack.auth_url, verify=client_context(stack.ca), timeout=10) as http:
        created = await http.post("/api/v1/users", json={"username": name, "password": PASSWORD})
        assert created.status_code == 201, created.text
        login = await http.post("/api/v1/sessions", json={"username": name, "password": PASSWORD})
        assert login.status_code == 201, login.text
        return created.json()["id"], login.json()["token"]


@asynccontextmanager
async def _client(url: str, stack: Stack, token: str) -> AsyncIterator[TestClient]:
    async with connect(url, ssl=client_context(stack.ca), additional_headers={"Authorization": f"Bearer {token}"},
                       open_timeout=10) as ws:
        client = TestClient(ws)
        await client.expect("hello")
        yield client


def _bodies(client: TestClient) -> list[str]:
    return [f.message.body for f in client.seen if isinstance(f, MessageFrame)]


def test_certificates_stay_with_their_service(stack: Stack) -> None:
    listing = stack.exec("gateway-1", "ls", "-ln", "/app/certs")
    names = sorted(line.split()[-1] for line in listing.splitlines()[1:])
    assert names == ["ca.pem", "server-key.pem", "server.pem"]  # no CA key, nobody else's key
    key = next(line for line in listing.splitlines() if line.endswith("server-key.pem")).split()
    assert key[0] == "-rw-------" and key[2] == "10001"
    assert stack.exec("auth", "id", "-u").strip() == "10001"


async def test_users_talk_across_both_gateways_through_the_balancer(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.auth_url, verify=client_context(stack.ca)) as http:
        gateway_url = (await http.get("/api/v1/endpoints")).json()["gateway_url"]
    assert gateway_url == stack.gateway_url
    alice_id, alice = await _user(stack, _name("alice"))
    bob_id, bob = await _user(stack, _name("bob"))
    _, carol = await _user(stack, _name("carol"))
    # Round robin over two ready gateways: four connections land two on each.
    async with (
        _client(gateway_url, stack, alice) as alice1,
        _client(gateway_url, stack, alice) as alice2,
        _client(gateway_url, stack, bob) as bob1,
        _client(gateway_url, stack, carol) as carol1,
    ):
        open_per_gateway = [await asyncio.to_thread(stack.metric, g, "chase_gateway_connections_open")
                            for g in ("gateway-1", "gateway-2")]
        assert all(n >= 1 for n in open_per_gateway), open_per_gateway

        await alice1.send_frame(type="send", client_msg_id="pub-1", body="hello room")
        ack = await alice1.expect("ack")
        for client in (alice2, bob1, carol1):
            frame = await client.expect("message", lambda f: f.message.id == ack.message_id)
            assert frame.message.body == "hello room" and frame.message.sender.id == alice_id

        await alice1.send_frame(type="send", client_msg_id="dm-1", recipient_id=bob_id, body="psst bob")
        ack = await alice1.expect("ack", lambda f: f.client_msg_id == "dm-1")
        await bob1.expect("message", lambda f: f.message.id == ack.message_id)
        await alice2.expect("message", lambda f: f.message.id == ack.message_id)
        await bob1.send_frame(type="send", client_msg_id="pub-2", body="marker")
        marker = await bob1.expect("ack")
        await carol1.expect("message", lambda f: f.message.id == marker.message_id)
        assert "psst bob" not in _bodies(carol1)


async def test_a_restarted_gateway_sends_its_clients_elsewhere(stack: Stack) -> None:
    _, alice = await _user(stack, _name("alice"))
    async with _client(stack.gateway_url, stack, alice) as first, _client(stack.gateway_url, stack, alice) as second:
        restart = asyncio.create_task(asyncio.to_thread(stack.compose, "restart", "-t", "20", "gateway-1"))
        # Whichever connection was on gateway-1 is closed with "going away"; the other stays.
        done, _ = await asyncio.wait([asyncio.create_task(c.closed(timeout=60)) for c in (first, second)],
                                     return_when=asyncio.FIRST_COMPLETED)
        code, reason = done.pop().result()
        assert (code, reason) == (1001, "gateway shutting down")
        await restart
    # Through the balancer, reconnecting works at once: gateway-2 takes it while gateway-1 restarts.
    async with _client(stack.gateway_url, stack, alice) as again:
        await again.send_frame(type="send", client_msg_id="after-restart", body="still here")
        await again.expect("ack")
    await asyncio.to_thread(stack.wait_healthy, "gateway-1")


def test_a_service_that_cannot_read_its_key_says_so_in_one_line(stack: Stack) -> None:
    result = stack.compose("run", "--rm", "--no-deps", "--user", "10002", "auth", check=False, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if line.startswith("chase: ")]
    assert "server-key.pem is not readable by this user (uid 10002)" in line


async def test_the_operator_disables_a_user_on_every_gateway_at_once(stack: Stack) -> None:
    name = _name("mallory")
    _, token = await _user(stack, name)
    async with _client(stack.gateway_url, stack, token) as first, _client(stack.gateway_url, stack, token) as second:
        said = await asyncio.to_thread(stack.exec, "auth", "chase", "admin", "disable", name)
        assert said.strip() == f"disabled {name}; 1 sessions ended"
        assert await first.closed() == (4401, "session revoked")
        assert await second.closed() == (4401, "session revoked")
    stats = json.loads(await asyncio.to_thread(stack.exec, "auth", "chase", "admin", "stats"))
    assert stats["disabled_users"] >= 1 and stats["users"] >= 1

    # The gateways' logs are JSON lines, each connection's lines carrying its connection id.
    logs = await asyncio.to_thread(stack.compose, "logs", "--no-color", "gateway-1", "gateway-2")
    events = [json.loads(line.split("| ", 1)[1]) for line in logs.stdout.splitlines() if "| {" in line]
    closed = [e for e in events if e["event"] == "client disconnected" and e.get("code") == 4401]
    assert len({e["connection_id"] for e in closed}) >= 2
