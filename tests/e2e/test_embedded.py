"""`chase serve` as a real process: the whole system on the embedded default, as `make run`
starts it, reached over verified TLS, and stopped cleanly by Ctrl-C (SIGINT).

Every port is moved off its default and nothing else is said: the gateway must check tokens
with the auth service it runs beside (in-process), not at a default URL where whatever listens
on 8443 would answer."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from chase.tls import client_context
from services.auth.client import AuthClient
from tests.e2e.processes import processes, wait_for_ports
from tests.helpers import unused_port
from tests.integration.system import TestClient

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def served(tmp_path: Path, dev_certs: Path):
    auth_port, gateway_port, metrics_port = unused_port(), unused_port(), unused_port()
    env = {
        "CHASE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'chase.db'}",
        "CHASE_CERTS_DIR": str(dev_certs),
        "CHASE_AUTH_PORT": str(auth_port),
        "CHASE_AUTH_BCRYPT_ROUNDS": "4",
        "CHASE_GATEWAY_PORT": str(gateway_port),
        "CHASE_METRICS_PORT": str(metrics_port),
    }
    with processes(tmp_path, **env) as procs:
        serve = procs.start("serve", "serve")
        await wait_for_ports(procs, auth_port, gateway_port, metrics_port)
        yield serve, auth_port, gateway_port, metrics_port, dev_certs / "ca.pem"


async def test_serve_is_the_whole_system_over_verified_tls(served) -> None:  # noqa: ANN001
    serve, auth_port, gateway_port, metrics_port, ca = served
    async with httpx.AsyncClient(verify=client_context(ca)) as http:
        spec = await http.get(f"https://127.0.0.1:{auth_port}/openapi.json")
        assert spec.status_code == 200 and "/api/v1/sessions" in spec.json()["paths"]
    # Without the dev CA the certificate does not verify: nothing turns verification off.
    async with httpx.AsyncClient(verify=client_context(None)) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(f"https://127.0.0.1:{auth_port}/healthz")

    async with AuthClient(f"https://127.0.0.1:{auth_port}", ca_path=ca) as auth:
        await auth.register("alice", PASSWORD)
        await auth.register("bob", PASSWORD)
        alice = await auth.login("alice", PASSWORD)
        bob = await auth.login("bob", PASSWORD)

    def dial(token: str):  # noqa: ANN202
        return connect(
            f"wss://127.0.0.1:{gateway_port}",
            ssl=client_context(ca),
            additional_headers={"Authorization": f"Bearer {token}"},
        )

    async with dial(alice.token) as a, dial(bob.token) as b:
        alice_ws, bob_ws = TestClient(a), TestClient(b)
        await alice_ws.expect("hello")
        await bob_ws.expect("hello")
        await alice_ws.send_frame(type="send", client_msg_id="hi-1", recipient_id=bob.user.id, body="hi bob 👋")
        ack = await alice_ws.expect("ack")
        frame = await bob_ws.expect("message", lambda f: f.message.id == ack.message_id)
        assert frame.message.body == "hi bob 👋" and frame.message.sender.username == "alice"
        await bob_ws.send_frame(type="send", client_msg_id="all-1", recipient_id=None, body="hello room")
        room_ack = await bob_ws.expect("ack")
        frame = await alice_ws.expect("message", lambda f: f.message.id == room_ack.message_id)
        assert frame.message.recipient_id is None and frame.message.sender.username == "bob"

    # The gateway checks tokens with the auth service of its own process: a logged-out
    # session is refused at once.
    async with AuthClient(f"https://127.0.0.1:{auth_port}", ca_path=ca) as auth:
        await auth.logout(bob.token)
    async with dial(bob.token) as b:
        assert await TestClient(b).closed() == (4401, "invalid or expired token")

    async with httpx.AsyncClient(verify=client_context(ca)) as http:
        scrape = await http.get(f"https://127.0.0.1:{metrics_port}/metrics")
        assert scrape.status_code == 200
        assert 'chase_gateway_connections_total{outcome="accepted"} 2.0' in scrape.text

    serve.signal(signal.SIGINT)
    assert serve.wait(20) == 0, serve.tail()
    assert "Traceback" not in serve.log.read_text()


async def test_a_bad_database_url_stops_serve_with_one_clear_line(tmp_path: Path, dev_certs: Path) -> None:
    with processes(tmp_path, CHASE_CERTS_DIR=str(dev_certs)) as procs:
        result = procs.run("serve", CHASE_DATABASE_URL="mysql+aiomysql://root@127.0.0.1:1/nowhere")
        assert result.returncode == 2
        assert result.stderr.strip().startswith("chase: CHASE_DATABASE_URL: cannot reach"), result.stderr
        assert "Traceback" not in result.stderr
        result = procs.run("gateway", CHASE_AMQP_URL="amqp://guest:guest@127.0.0.1:1/")
        assert result.returncode == 2
        assert "CHASE_AMQP_URL" in result.stderr and "Traceback" not in result.stderr

