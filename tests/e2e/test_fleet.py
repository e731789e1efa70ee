"""The production topology as real processes against the real RabbitMQ and MariaDB:
one auth service, two persistence workers (one active, one hot standby) and two gateways.

Users on different gateways talk to each other; the active worker is killed with SIGKILL in
the middle of a stream and the standby takes over with nothing lost and nothing doubled; a
gateway that dies has its users shown offline everywhere else.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from websockets.asyncio.client import connect

from chase.schemas import MessageFrame, PresenceFrame
from chase.store.engine import create_engine
from chase.tls import client_context
from services.auth.client import AuthClient
from tests.e2e.processes import Processes, processes, wait_for_ports
from tests.helpers import unused_port, wait_until
from tests.integration.system import TestClient, delete_namespace

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def fleet(tmp_path: Path, mariadb_url: str, amqp_url: str, bus_namespace: str, dev_certs: Path):
    auth_port, gw1_port, gw2_port = unused_port(), unused_port(), unused_port()
    env = {
        "CHASE_DATABASE_URL": mariadb_url,
        "CHASE_AMQP_URL": amqp_url,
        "CHASE_BUS_NAMESPACE": bus_namespace,
        "CHASE_CERTS_DIR": str(dev_certs),
        "CHASE_AUTH_PORT": str(auth_port),
        "CHASE_AUTH_BCRYPT_ROUNDS": "4",
        "CHASE_GATEWAY_AUTH_URL": f"https://127.0.0.1:{auth_port}",
        "CHASE_GATEWAY_HEARTBEAT_SECONDS": "0.5",
        # The tests send bursts faster than a person types.
        "CHASE_GATEWAY_RATE_BURST": "1000",
    }
    with processes(tmp_path, **env) as procs:
        migrated = procs.run("migrate")
        assert migrated.returncode == 0, migrated.stderr
        procs.start("auth", "auth")
        # The first worker to consume is the active one; the second waits as hot standby.
        first = procs.start("persistence-1", "persistence")
        await wait_until(lambda: "persistence_started" in first.log.read_text(), timeout=30)
        procs.start("persistence-2", "persistence")
        procs.start("gateway-1", "gateway", CHASE_GATEWAY_PORT=str(gw1_port), CHASE_GATEWAY_ID="gw1")
        procs.start("gateway-2", "gateway", CHASE_GATEWAY_PORT=str(gw2_port), CHASE_GATEWAY_ID="gw2")
        await wait_for_ports(procs, auth_port, gw1_port, gw2_port)
        auth = AuthClient(f"https://127.0.0.1:{auth_port}", ca_path=dev_certs / "ca.pem")
        try:
            yield Fleet(procs, auth, dev_certs / "ca.pem", mariadb_url, gw1_port, gw2_port)
        finally:
            await auth.aclose()
            await delete_namespace(amqp_url, set(), bus_namespace)


class Fleet:
    def __init__(self, procs: Processes, auth: AuthClient, ca: Path, db: str, gw1: int, gw2: int) -> None:
        self.procs, self.auth, self.ca, self.db = procs, auth, ca, db
        self.gateways = {1: gw1, 2: gw2}

    async def user(self, name: str) -> tuple[int, str]:
        await self.auth.register(name, PASSWORD)
        session = await self.auth.login(name, PASSWORD)
        return session.user.id, session.token

    @asynccontextmanager
    async def client(self, token: str, gateway: int) -> AsyncIterator[TestClient]:
        async with connect(
            f"wss://127.0.0.1:{self.gateways[gateway]}",
            ssl=client_context(self.ca),
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            client = TestClient(ws)
            await client.expect("hello")
            yield client

    def proc(self, name: str):  # noqa: ANN201
        return next(p for p in self.procs.procs if p.name == name)


def _bodies(client: TestClient) -> list[str]:
    return [f.message.body for f in client.seen if isinstance(f, MessageFrame)]


async def test_users_on_different_gateways_talk_and_private_stays_private(fleet: Fleet) -> None:
    alice_id, alice = await fleet.user("alice")
    bob_id, bob = await fleet.user("bob")
    _, carol = await fleet.user("carol")
    async with (
        fleet.client(alice, 1) as alice1,
        fleet.client(alice, 2) as alice2,
        fleet.client(bob, 2) as bob2,
        fleet.client(carol, 1) as carol1,
    ):
        await alice1.send_frame(type="send", client_msg_id="pub-1", body="hello room")
        ack = await alice1.expect("ack")
        for client in (alice2, bob2, carol1):
            frame = await client.expect("message", lambda f: f.message.id == ack.message_id)
            assert frame.message.body == "hello room" and frame.message.sender.id == alice_id

        await alice1.send_frame(type="send", client_msg_id="dm-1", recipient_id=bob_id, body="psst bob")
        ack = await alice1.expect("ack", lambda f: f.client_msg_id == "dm-1")
        await bob2.expect("message", lambda f: f.message.id == ack.message_id)
        await alice2.expect("message", lambda f: f.message.id == ack.message_id)
        # A public message sent after the private one reaches carol: she has seen everything
        # routed to her by then, and the private message was not among it.
        await bob2.send_frame(type="send", client_msg_id="pub-2", body="marker")
        marker = await bob2.expect("ack")
        await carol1.expect("message", lambda f: f.message.id == marker.message_id)
        assert "psst bob" not in _bodies(carol1)
        await carol1.send_frame(type="history", with_user_id=alice_id, request_id="h")
        page = await carol1.expect("history_page")
        assert page.messages == []


async def test_killing_the_active_worker_loses_and_doubles_nothing(fleet: Fleet) -> None:
    _, alice = await fleet.user("alice")
    total = 60
    async with fleet.client(alice, 1) as sender:
        for i in range(total // 2):
            await sender.send_frame(type="send", client_msg_id=f"m-{i}", body=f"message {i}")
        # Kill the active worker while the stream is in flight; the standby takes over.
        fleet.proc("persistence-1").signal(signal.SIGKILL)
        for i in range(total // 2, total):
            await sender.send_frame(type="send", client_msg_id=f"m-{i}", body=f"message {i}")
        acked: list[str] = []
        while len(set(acked)) < total:
            acked.append((await sender.expect("ack", timeout=60)).client_msg_id)
        assert sorted(set(acked)) == sorted(f"m-{i}" for i in range(total))

    engine = create_engine(fleet.db)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT client_msg_id FROM messages ORDER BY id"))).scalars().all()
    finally:
        await engine.dispose()
    assert sorted(rows) == sorted(f"m-{i}" for i in range(total))  # each exactly once


async def test_a_dead_gateway_takes_its_users_offline_for_everyone(fleet: Fleet) -> None:
    carol_id, carol = await fleet.user("carol")
    _, bob = await fleet.user("bob")
    async with fleet.client(bob, 2) as bob2:
        async with fleet.client(carol, 1):
            await bob2.expect("presence", lambda f: carol_id in {u.id for u in f.online})
            fleet.proc("gateway-1").signal(signal.SIGKILL)
            frame = await bob2.expect("presence", lambda f: carol_id in {u.id for u in f.offline},
                                     timeout=15)
            assert isinstance(frame, PresenceFrame)
