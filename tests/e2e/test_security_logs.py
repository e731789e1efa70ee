"""No password, token, hash or message body in any log line, at debug level, on both
deployments: a whole scenario against `chase serve` as a real process, then every byte it
wrote is searched."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import connect

from chase.store.engine import create_engine
from chase.store.tables import users
from chase.tls import client_context
from tests.e2e.processes import processes, wait_for_ports
from tests.helpers import unused_port
from tests.integration.system import delete_namespace

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["embedded", "rabbitmq-mariadb"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "embedded":
        return {"CHASE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'chase.db'}"}
    return {"CHASE_DATABASE_URL": request.getfixturevalue("mariadb_url"),
            "CHASE_AMQP_URL": request.getfixturevalue("amqp_url"),
            "CHASE_BUS_NAMESPACE": request.getfixturevalue("bus_namespace")}


async def test_a_debug_log_holds_no_secret(tmp_path: Path, dev_certs: Path, deployment: dict[str, str]) -> None:
    auth_port, gateway_port = unused_port(), unused_port()
    env = {**deployment, "CHASE_CERTS_DIR": str(dev_certs), "CHASE_AUTH_PORT": str(auth_port),
           "CHASE_AUTH_BCRYPT_ROUNDS": "4", "CHASE_GATEWAY_PORT": str(gateway_port),
           "CHASE_GATEWAY_AUTH_URL": f"https://127.0.0.1:{auth_port}", "CHASE_LOG_LEVEL": "debug"}
    mark = uuid.uuid4().hex[:12]
    first, second, guess = f"first-{mark} pass", f"second-{mark} pass", f"guess-{mark}"
    bodies = [f"public-{mark}", f"private-{mark}"]
    secrets: list[str] = [first, second, guess, *bodies]
    try:
        with processes(tmp_path, **env) as procs:
            serve = procs.start("serve", "serve")
            await wait_for_ports(procs, auth_port, gateway_port)
            base, ca = f"https://127.0.0.1:{auth_port}/api/v1", client_context(dev_certs / "ca.pem")
            async with httpx.AsyncClient(base_url=base, verify=ca) as http:
                for name in ("alice", "bob"):
                    assert (await http.post("/users", json={"username": name, "password": first})).status_code == 201
                assert (await http.post("/sessions", json={"username": "alice", "password": guess})).status_code == 401
                await http.post("/users", content='{"username":"carol","password":"x\\ud800yyyyyyyy"}',
                                headers={"Content-Type": "application/json"})
                tokens = {}
                for name in ("alice", "bob"):
                    reply = (await http.post("/sessions", json={"username": name, "password": first})).json()
                    tokens[name] = reply["token"]
                bob_id = (await http.get("/users/me", headers={"Authorization": f"Bearer {tokens['bob']}"})).json()["id"]
                async with connect(f"wss://127.0.0.1:{gateway_port}", ssl=ca,
                                   additional_headers={"Authorization": f"Bearer {tokens['alice']}"}) as ws:
                    await ws.recv()  # hello
                    for i, (body, to) in enumerate(zip(bodies, (None, bob_id), strict=True)):
                        await ws.send(json.dumps({"type": "send", "client_msg_id": f"m{i}", "recipient_id": to,
                                                  "body": body}))
                    await ws.send(json.dumps({"type": "send", "client_msg_id": "bad", "body": "x", "sender": guess}))
                    await ws.send(json.dumps({"type": "history", "request_id": "h"}))
                    seen = ""
                    while "history_page" not in seen:
                        seen = await ws.recv()
                alice = {"Authorization": f"Bearer {tokens['alice']}"}
                await http.get("/sessions", headers=alice)
                assert (await http.put("/users/me/password", headers=alice,
                                       json={"old_password": first, "new_password": second})).status_code == 204
                await http.delete("/sessions/current", headers=alice)
            engine = create_engine(deployment["CHASE_DATABASE_URL"])
            try:
                async with engine.connect() as conn:
                    secrets += [row.password_hash for row in await conn.execute(sa.select(users.c.password_hash))]
            finally:
                await engine.dispose()
        output = serve.log.read_text(errors="replace")
    finally:
        if "CHASE_AMQP_URL" in deployment:
            await delete_namespace(deployment["CHASE_AMQP_URL"], set(), deployment["CHASE_BUS_NAMESPACE"])
    secrets += list(tokens.values()) + [hashlib.sha256(t.encode()).hexdigest() for t in tokens.values()]
    assert "[debug" in output  # the level really was debug
    leaked = [secret for secret in secrets if secret in output]
    assert not leaked, f"{len(leaked)} secrets in the log"
