"""Two users chatting through the compose topology with the real client core, and the checks
that nothing they sent was lost or doubled."""

from __future__ import annotations

import asyncio
import uuid

from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient, Outgoing
from client.core.conversations import PUBLIC
from client.core.endpoints import Endpoints
from client.core.session import chat_client, open_api
from tests.compose.stack import Stack
from tests.helpers import wait_until

PASSWORD = "correct horse battery staple"
#: Each user sends 10 messages a second, half the default rate limit.
SEND_INTERVAL = 0.1


async def connected(endpoints: Endpoints, name: str) -> ChatClient:
    """A registered, logged-in, connected client that reconnects on its own for minutes."""
    api = open_api(endpoints)
    try:
        await api.register(name, PASSWORD)
        session = await api.login(name, PASSWORD)
    finally:
        await api.aclose()
    client = chat_client(endpoints, session, policy=BackoffPolicy(base=0.2, cap=2.0, max_attempts=200))
    await client.start()
    return client


class ChatLoad:
    """alice alternates public and private (to bob) messages, bob posts publicly."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sent: list[tuple[ChatClient, Outgoing]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ChatLoad:
        endpoints = Endpoints.resolve(self.stack.auth_url, self.stack.gateway_url, self.stack.ca)
        tag = uuid.uuid4().hex[:6]
        self.alice = await connected(endpoints, f"alice-{tag}")
        self.bob = await connected(endpoints, f"bob-{tag}")
        self._task = asyncio.create_task(self._send())
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
        await self.alice.close()
        await self.bob.close()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _send(self) -> None:
        i = 0
        while not self._stop.is_set():
            self.sent.append((self.alice, await self.alice.send(f"alice {i}", to=None if i % 2 else self.bob.me.id)))
            self.sent.append((self.bob, await self.bob.send(f"bob {i}")))
            i += 1
            await asyncio.sleep(SEND_INTERVAL)

    async def check(self, *, ack_timeout: float = 180, transcript_timeout: float = 60) -> None:
        """Stop sending; then every message is acked, stored exactly once, and in the
        transcript of both clients."""
        await self.stop()
        _, waiting = await asyncio.wait([o.acked for _, o in self.sent], timeout=ack_timeout)
        if waiting:
            unacked = [o.client_msg_id for _, o in self.sent if o.acked in waiting]
            listed = ", ".join(f"'{i}'" for i in unacked)
            rows = await asyncio.to_thread(self.stack.sql, f"SELECT client_msg_id FROM messages WHERE client_msg_id IN ({listed})")
            states = {c.me.username: sorted({str(p.state) for p in c.outbox.messages(None)} |
                                            {str(p.state) for p in c.outbox.messages(self.bob.me.id)})
                      for c in (self.alice, self.bob)}
            print(await asyncio.to_thread(self.stack.logs, tail=200))
            raise AssertionError(f"{len(unacked)} of {len(self.sent)} sends unacknowledged after {ack_timeout} s "
                                 f"({len(rows)} of them stored); outbox states {states}; first {unacked[:5]}")
        acks = [o.acked.result() for _, o in self.sent]
        assert len({ack.message_id for ack in acks}) == len(self.sent)  # one message per send
        rows = await asyncio.to_thread(
            self.stack.sql,
            "SELECT id, client_msg_id, recipient_id IS NULL FROM messages "
            f"WHERE sender_id IN ({self.alice.me.id}, {self.bob.me.id})",
        )
        stored = {int(r[0]): r[1] for r in rows}
        assert len(rows) == len(self.sent)  # nothing lost, nothing doubled
        assert stored == {ack.message_id: ack.client_msg_id for ack in acks}
        public = {int(r[0]) for r in rows if r[2] == "1"}
        private = set(stored) - public
        alice, bob = self.alice, self.bob

        def missing() -> dict[str, list[int]]:
            gaps = {
                "alice public": public - _ids(alice, PUBLIC), "bob public": public - _ids(bob, PUBLIC),
                "alice private": private - _ids(alice, bob.me.id), "bob private": private - _ids(bob, alice.me.id),
            }
            return {name: sorted(ids) for name, ids in gaps.items() if ids}

        try:
            await wait_until(lambda: not missing(), timeout=transcript_timeout)
        except BaseException:
            print(f"transcripts miss: {missing()}")
            raise


def _ids(client: ChatClient, conversation: int | None) -> set[int]:
    return {m.id for m in client.store.messages(conversation)}
