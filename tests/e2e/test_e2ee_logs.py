"""End-to-end encrypted messages through `chase serve` as a real process at debug level, on
both deployments: two people's clients (the client core with vodozemac) exchange encrypted
private messages, then neither the server's log nor the database holds their text."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from chase.store.engine import create_engine
from chase.store.tables import messages
from client.core.backoff import BackoffPolicy
from client.core.e2ee.setup import open_e2ee
from client.core.endpoints import Endpoints
from client.core.session import chat_client, open_api
from tests.e2e.processes import processes, wait_for_ports
from tests.e2e.test_security_logs import deployment  # noqa: F401 - the fixture
from tests.helpers import unused_port, wait_until
from tests.integration.system import PASSWORD, delete_namespace

pytestmark = pytest.mark.timeout(120)


async def test_a_debug_log_holds_no_plaintext_of_encrypted_messages(
    tmp_path: Path, dev_certs: Path, deployment: dict[str, str]  # noqa: F811
) -> None:
    auth_port, gateway_port = unused_port(), unused_port()
    env = {**deployment, "CHASE_CERTS_DIR": str(dev_certs), "CHASE_AUTH_PORT": str(auth_port),
           "CHASE_AUTH_BCRYPT_ROUNDS": "4", "CHASE_GATEWAY_PORT": str(gateway_port),
           "CHASE_GATEWAY_AUTH_URL": f"https://127.0.0.1:{auth_port}", "CHASE_LOG_LEVEL": "debug"}
    mark = uuid.uuid4().hex
    texts = [f"alice whispers {mark}", f"bob whispers {mark}"]
    try:
        with processes(tmp_path, **env) as procs:
            serve = procs.start("serve", "serve")
            await wait_for_ports(procs, auth_port, gateway_port)
            endpoints = Endpoints.resolve(f"https://127.0.0.1:{auth_port}", f"wss://127.0.0.1:{gateway_port}",
                                          dev_certs / "ca.pem")
            people = {}
            for name in ("alice", "bob"):
                api = open_api(endpoints)
                await api.register(name, PASSWORD)
                session = await api.login(name, PASSWORD)
                e2ee = await open_e2ee(api, session, endpoints.auth_url, passphrase=name, data_dir=tmp_path / name)
                client = chat_client(endpoints, session, policy=BackoffPolicy(base=0.05, cap=0.3), e2ee=e2ee)
                await client.start()
                people[name] = (api, session, client)
            alice, bob = people["alice"][2], people["bob"][2]
            await (await alice.send(texts[0], to=bob.me.id)).acked
            await (await bob.send(texts[1], to=alice.me.id)).acked
            await wait_until(lambda: {m.body for m in alice.store.messages(bob.me.id)} == set(texts)
                             and {m.body for m in bob.store.messages(alice.me.id)} == set(texts))
            for api, session, client in people.values():
                await client.close()
                await api.logout(session)
                await api.aclose()
            engine = create_engine(deployment["CHASE_DATABASE_URL"])
            try:
                async with engine.connect() as conn:
                    rows = (await conn.execute(sa.select(messages.c.body, messages.c.ciphertext))).all()
            finally:
                await engine.dispose()
        output = serve.log.read_text(errors="replace")
    finally:
        if "CHASE_AMQP_URL" in deployment:
            await delete_namespace(deployment["CHASE_AMQP_URL"], set(), deployment["CHASE_BUS_NAMESPACE"])
    assert "[debug" in output
    assert len(rows) == 2 and all(row.body == "" and row.ciphertext for row in rows)
    assert not [text for text in texts if text in output or any(text in row.ciphertext for row in rows)]
    assert mark not in output
