"""A rolling restart of the compose topology under load: every service, one after the other,
is stopped with SIGTERM (gateways close with 1001, workers finish their batch) and started
again while two users keep sending. Clients are the real client core (reconnect, resend with
the same id, sync). Every message ends acknowledged, stored exactly once, and in the
transcript of every client that may see it."""

from __future__ import annotations

import asyncio
import time

import pytest

from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient, Outgoing
from client.core.conversations import PUBLIC
from client.core.endpoints import Endpoints
from client.core.session import chat_client, open_api
from tests.compose.stack import CHASE_SERVICES, Stack
from tests.compose.test_compose import PASSWORD, _name
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(900)

#: Every service, the infrastructure last (their restart is the slowest).
ROLLING_ORDER = (*CHASE_SERVICES, "haproxy", "rabbitmq", "mariadb")
SEND_INTERVAL = 0.1  # each user 10 messages a second, half the default rate limit


async def _connected(endpoints: Endpoints, name: str) -> ChatClient:
    api = open_api(endpoints)
    try:
        await api.register(name, PASSWORD)
        session = await api.login(name, PASSWORD)
    finally:
        await api.aclose()
    client = chat_client(endpoints, session, policy=BackoffPolicy(base=0.2, cap=2.0, max_attempts=200))
    await client.start()
    return client


async def test_rolling_restart_under_load_loses_and_doubles_nothing(stack: Stack) -> None:
    endpoints = Endpoints.resolve(stack.auth_url, stack.gateway_url, stack.ca)
    alice = await _connected(endpoints, _name("alice"))
    bob = await _connected(endpoints, _name("bob"))
    sent: list[tuple[ChatClient, Outgoing]] = []
    restarted = asyncio.Event()

    async def load() -> None:
        i = 0
        while not restarted.is_set():
            sent.append((alice, await alice.send(f"alice {i}", to=None if i % 2 else bob.me.id)))
            sent.append((bob, await bob.send(f"bob {i}")))
            i += 1
            await asyncio.sleep(SEND_INTERVAL)

    def roll() -> dict[str, float]:
        took = {}
        for service in ROLLING_ORDER:
            started = time.monotonic()
            stack.compose("restart", "-t", "20", service, timeout=120)
            stack.wait_healthy(service, timeout=120)
            took[service] = round(time.monotonic() - started, 1)
        return took

    try:
        sender = asyncio.create_task(load())
        await asyncio.sleep(1)
        try:
            took = await asyncio.to_thread(roll)
        finally:
            restarted.set()
            await sender
        print(f"restart timings (s): {took}; messages sent: {len(sent)}")
        acks = await asyncio.wait_for(asyncio.gather(*(o.acked for _, o in sent)), 180)

        ids = [ack.message_id for ack in acks]
        assert len(set(ids)) == len(sent)  # one message per send, none merged
        rows = await asyncio.to_thread(
            stack.sql,
            "SELECT id, client_msg_id, recipient_id IS NULL FROM messages "
            f"WHERE sender_id IN ({alice.me.id}, {bob.me.id})",
        )
        stored = {int(r[0]): r[1] for r in rows}
        assert len(rows) == len(sent)  # nothing lost, nothing doubled
        assert stored == {ack.message_id: ack.client_msg_id for ack in acks}

        # Every client ends with what the database holds for it.
        public = {int(r[0]) for r in rows if r[2] == "1"}
        private = set(stored) - public

        await wait_until(
            lambda: public <= _ids(alice, PUBLIC) and public <= _ids(bob, PUBLIC)
            and private <= _ids(alice, bob.me.id) and private <= _ids(bob, alice.me.id),
            timeout=60,
        )
    finally:
        await alice.close()
        await bob.close()


def _ids(client: ChatClient, conversation: int | None) -> set[int]:
    return {m.id for m in client.store.messages(conversation)}
