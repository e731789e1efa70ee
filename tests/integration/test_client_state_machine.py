"""A Hypothesis state machine drives the client core against the real system to one end state.

Three accounts, each with a real :class:`~client.core.chat.ChatClient` keeping its outbox and
sync cursor on disk, each connecting through a :class:`~tests.faults.TcpForwarder` of its own
in front of the gateway. In any order the machine: sends public and private messages, cuts a
client's link (and restores it), freezes it (and thaws it), drops it and lets it reconnect at
once, closes a client and starts a new one for the same account (which resends the kept outbox
under the same ids), and stops, starts or restarts the gateway.

After each example everything is restored, every account has a running client, and once every
outbox is empty and the clients have caught up:

- every message sent is stored exactly once, with its body and addressee, and nothing else is;
- each sender's messages are stored in the order it sent them;
- each client holds exactly what the database says its user may see (after opening each of its
  private conversations, since a client that starts from a kept cursor loads older private
  messages only when a conversation is opened; everything after its cursor it must hold without).

Catching up is left to the clients (live delivery, gap detection, the sync on each reconnect):
the test waits, bounded, for what each must hold and never asks for a sync itself.

One system per deployment (embedded, RabbitMQ + MariaDB), new users per example. Runs without
shrinking: real services make each example cost seconds; a failure prints its steps. A
gateway that does not stop within a bound fails the test (:class:`GatewayStopHung`): it found
a lost cancellation in the RabbitMQ bus once, fixed since.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from chase.schemas import ChatMessage
from chase.store.tables import messages
from client.core.api import AuthSession
from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient
from client.core.conversations import PUBLIC
from client.core.endpoints import Endpoints
from client.core.events import ClientState
from client.core.session import chat_client, local_state
from tests.faults import TcpForwarder
from tests.helpers import wait_until
from tests.integration.system import System, running_system
from tests.integration.test_client_core import login

pytestmark = pytest.mark.timeout(240)

ACCOUNTS = 3
#: Generous bounds for a busy machine: nothing here is timed, these only stop a hang.
SETTLE_SECONDS = 90.0
#: Fast reconnects for ever (never the 30–60 s slow attempts): the machine restores quickly.
POLICY = dict(base=0.05, cap=0.3, max_attempts=10_000, slow_cap=1.0)

MACHINE_SETTINGS = settings(
    max_examples=12,
    stateful_step_count=15,
    deadline=None,
    database=None,
    # Each example starts real clients against real services: seconds, not microseconds.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


#: How long a gateway may take to stop before the test calls it hung (it takes well under 1 s).
STOP_BOUND_SECONDS = 30.0


class GatewayStopHung(BaseException):  # noqa: N818
    """The gateway did not stop: its shutdown waited for ever for its presence heartbeat task.

    Seen when ``RabbitBus.publish`` bounded the broker's confirm with ``asyncio.wait_for``,
    which on Python 3.11 can swallow a cancellation arriving as the confirm does (the bus now
    uses ``asyncio.timeout``). A BaseException so that Hypothesis stops at once instead of
    replaying the example against a system whose old gateway is still half-stopped.
    """


class Link:
    UP, CUT, FROZEN = "up", "cut", "frozen"


@dataclass
class Account:
    session: AuthSession
    forwarder: TcpForwarder
    endpoints: Endpoints
    client: ChatClient | None = None
    link: str = Link.UP
    #: The sync cursor the running client started from (0: none kept).
    start_cursor: int = 0
    #: Every message handed to a client of this account, in order: (client_msg_id, body, to user id).
    sent: list[tuple[str, str, int | None]] = field(default_factory=list)

    @property
    def user_id(self) -> int:
        return self.session.user.id


@dataclass(frozen=True)
class Row:
    id: int
    sender_id: int
    recipient_id: int | None
    body: str
    client_msg_id: str


def row_of(message: ChatMessage) -> Row:
    return Row(message.id, message.sender.id, message.recipient_id, message.body, message.client_msg_id)


async def settle(predicate: Callable[[], Any], what: Callable[[], str]) -> None:
    """Wait (bounded) for ``predicate``; an AssertionError saying ``what()`` if it never holds."""
    try:
        await wait_until(predicate, timeout=SETTLE_SECONDS, interval=0.05)
    except pytest.fail.Exception:
        raise AssertionError(f"not reached within {SETTLE_SECONDS}s: {what()}") from None


def machine_for(system: System, runner: asyncio.Runner) -> type[RuleBasedStateMachine]:
    """The state machine class for one running system (one event loop, ``runner``)."""

    class ClientMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.gateway_up = True
            self.accounts: list[Account] = []
            self.sends = 0
            self.floor = 0  # every message of this example has a larger id
            self.broken = False  # the system cannot be restored: only clean up
            runner.run(self._setup())

        def _run(self, coroutine: Any) -> Any:
            return runner.run(coroutine)

        # --- setting up and starting clients ------------------------------------------------

        async def _setup(self) -> None:
            async with system.engine.connect() as conn:
                self.floor = (await conn.execute(sa.select(sa.func.max(messages.c.id)))).scalar_one() or 0
            tag = uuid.uuid4().hex[:8]
            for n in range(ACCOUNTS):
                forwarder = TcpForwarder("127.0.0.1", system.gateway_settings.port)
                await forwarder.start()
                session = await login(system, f"sm{tag}{n}")
                endpoints = Endpoints.resolve(system.auth_url, f"wss://127.0.0.1:{forwarder.port}", system.ca_path)
                self.accounts.append(Account(session, forwarder, endpoints))
            for account in self.accounts:
                await self._start(account)

        async def _start(self, account: Account) -> None:
            local = local_state(account.endpoints, account.session)
            assert local is not None, "the account's local state is held by another client"
            account.start_cursor = local.cursor or 0
            client = chat_client(account.endpoints, account.session, policy=BackoffPolicy(**POLICY), local=local)
            await client.start()
            account.client = client

        def _where(self, condition: Callable[[Account], bool]) -> list[int]:
            return [n for n, a in enumerate(self.accounts) if condition(a)]

        def _pick(self, data: st.DataObject, condition: Callable[[Account], bool]) -> Account:
            return self.accounts[data.draw(st.sampled_from(self._where(condition)), label="account")]

        # --- rules ------------------------------------------------------------------------

        @precondition(lambda self: self._where(lambda a: a.client is not None))
        @rule(data=st.data(), offset=st.none() | st.integers(1, ACCOUNTS - 1), count=st.integers(1, 3))
        def send(self, data: st.DataObject, offset: int | None, count: int) -> None:
            """One client sends ``count`` messages to the public room or to another account."""
            account = self._pick(data, lambda a: a.client is not None)
            sender = self.accounts.index(account)
            to = None if offset is None else self.accounts[(sender + offset) % ACCOUNTS].user_id
            assert account.client is not None

            async def go() -> None:
                for _ in range(count):
                    self.sends += 1
                    body = f"{account.session.user.username} #{self.sends}"
                    outgoing = await account.client.send(body, to)  # type: ignore[union-attr]
                    account.sent.append((outgoing.client_msg_id, body, to))

            self._run(go())

        @precondition(lambda self: self._where(lambda a: a.link == Link.UP))
        @rule(data=st.data())
        def cut_link(self, data: st.DataObject) -> None:
            """The client's network goes away: its connection is reset, reconnecting is refused."""
            account = self._pick(data, lambda a: a.link == Link.UP)
            self._run(account.forwarder.cut())
            account.link = Link.CUT

        @precondition(lambda self: self._where(lambda a: a.link == Link.UP))
        @rule(data=st.data())
        def freeze_link(self, data: st.DataObject) -> None:
            """The client's network hangs: nothing moves, nothing is closed."""
            account = self._pick(data, lambda a: a.link == Link.UP)
            account.forwarder.freeze()
            account.link = Link.FROZEN

        @precondition(lambda self: self._where(lambda a: a.link != Link.UP))
        @rule(data=st.data())
        def restore_link(self, data: st.DataObject) -> None:
            """The network is back (the client reconnects by itself, or carries on)."""
            account = self._pick(data, lambda a: a.link != Link.UP)
            self._restore(account)

        @precondition(lambda self: self._where(lambda a: a.link == Link.UP))
        @rule(data=st.data())
        def drop_and_reconnect(self, data: st.DataObject) -> None:
            """The client's connection is reset once; it may reconnect at once."""
            account = self._pick(data, lambda a: a.link == Link.UP)

            async def blip() -> None:
                await account.forwarder.cut()
                await account.forwarder.restore()

            self._run(blip())

        # Closing waits for the WebSocket closing handshake: not through a frozen link.
        @precondition(lambda self: self._where(lambda a: a.client is not None and a.link != Link.FROZEN))
        @rule(data=st.data())
        def close_client(self, data: st.DataObject) -> None:
            """The app is closed: unsent messages stay on disk for the next client."""
            account = self._pick(data, lambda a: a.client is not None and a.link != Link.FROZEN)
            client, account.client = account.client, None
            self._run(client.close())  # type: ignore[union-attr]

        @precondition(lambda self: self.gateway_up and self._where(lambda a: a.client is None and a.link == Link.UP))
        @rule(data=st.data())
        def start_client(self, data: st.DataObject) -> None:
            """A new client for a closed account: it sends the kept outbox under the same ids."""
            account = self._pick(data, lambda a: a.client is None and a.link == Link.UP)
            self._run(self._start(account))

        @precondition(lambda self: self.gateway_up and self._where(lambda a: a.client is not None and a.link == Link.UP))
        @rule(data=st.data())
        def restart_client(self, data: st.DataObject) -> None:
            """The app is closed and opened again at once (whatever it had not sent is resent)."""
            account = self._pick(data, lambda a: a.client is not None and a.link == Link.UP)
            client, account.client = account.client, None
            self._run(client.close())  # type: ignore[union-attr]
            self._run(self._start(account))

        # A gateway shutting down waits for each client's closing handshake: none frozen.
        @precondition(lambda self: self.gateway_up and not self._where(lambda a: a.link == Link.FROZEN))
        @rule()
        def stop_gateway(self) -> None:
            self._stop_gateway()
            self.gateway_up = False

        @precondition(lambda self: not self.gateway_up)
        @rule()
        def start_gateway(self) -> None:
            self._run(system.start_gateway())
            self.gateway_up = True

        @precondition(lambda self: self.gateway_up and not self._where(lambda a: a.link == Link.FROZEN))
        @rule()
        def restart_gateway(self) -> None:
            self._stop_gateway()
            self._run(system.start_gateway())

        def _stop_gateway(self) -> None:
            async def stop() -> bool:
                try:
                    async with asyncio.timeout(STOP_BOUND_SECONDS):
                        await system.stop_gateway()
                except TimeoutError:
                    return False
                return True

            if not self._run(stop()):
                self.broken = True
                raise GatewayStopHung(f"the gateway did not stop within {STOP_BOUND_SECONDS}s")

        def _restore(self, account: Account) -> None:
            if account.link == Link.FROZEN:
                account.forwarder.thaw()
            else:
                self._run(account.forwarder.restore())
            account.link = Link.UP

        # --- the end state ------------------------------------------------------------------

        def teardown(self) -> None:
            try:
                if self.broken:
                    return
                for account in self.accounts:
                    if account.link != Link.UP:
                        self._restore(account)
                if not self.gateway_up:
                    self._run(system.start_gateway())
                    self.gateway_up = True
                self._run(self._check_end_state())
            finally:
                self._run(self._close_all())

        async def _close_all(self) -> None:
            for account in self.accounts:
                account.forwarder.thaw()
                if account.client is not None:
                    await account.client.close()
                    account.client = None
                await account.forwarder.close()

        async def _check_end_state(self) -> None:
            for account in self.accounts:
                if account.client is None:
                    await self._start(account)
            clients = [a.client for a in self.accounts]
            for client in clients:
                client.retry()  # type: ignore[union-attr]
            await settle(lambda: all(c.state is ClientState.CONNECTED and c.unsent == 0  # type: ignore[union-attr]
                                     for c in clients),
                         lambda: f"(state, unsent) per client {[(c.state, c.unsent) for c in clients]}")  # type: ignore[union-attr]
            stored = await self._stored()
            self._check_stored(stored)
            for account in self.accounts:
                await self._check_transcript(account, stored)

        async def _stored(self) -> list[Row]:
            async with system.engine.connect() as conn:
                result = await conn.execute(
                    sa.select(messages.c.id, messages.c.sender_id, messages.c.recipient_id, messages.c.body,
                              messages.c.client_msg_id)
                    .where(messages.c.id > self.floor).order_by(messages.c.id))
                return [Row(*r) for r in result.all()]

        def _check_stored(self, stored: list[Row]) -> None:
            """Each message stored once, as sent, nothing else, each sender's in its order."""
            ours = {a.user_id for a in self.accounts}
            assert all(r.sender_id in ours for r in stored), "a message from someone else in this example"
            for account in self.accounts:
                rows = [r for r in stored if r.sender_id == account.user_id]
                expected = [(cid, body, to) for cid, body, to in account.sent]
                found = [(r.client_msg_id, r.body, r.recipient_id) for r in rows]
                assert sorted(found) == sorted(expected), (
                    f"{account.session.user.username}: stored {found}, sent {expected}")
                assert found == expected, f"{account.session.user.username}: stored out of the order sent"

        async def _check_transcript(self, account: Account, stored: list[Row]) -> None:
            """The client holds what its user may see: after its cursor by itself, then all."""
            client = account.client
            assert client is not None
            me = account.user_id
            visible = {r for r in stored if r.recipient_id is None or me in (r.sender_id, r.recipient_id)}
            # Without opening a conversation: the public room, and all after the start cursor.
            must = {r for r in visible if r.recipient_id is None or r.id > account.start_cursor}

            def held() -> set[Row]:
                return {row_of(m) for c in [PUBLIC, *others] for m in client.store.messages(c) if m.id > self.floor}

            others = [a.user_id for a in self.accounts if a is not account]
            name = account.session.user.username
            await settle(lambda: must <= held(), lambda: f"{name} misses {sorted(must - held())}")
            assert held() <= visible, f"{name} holds what it may not see, or not as stored: {held() - visible}"
            for other in others:
                await client.load_history(other)
            assert held() == visible, f"{name}: held {sorted(held())} but may see {sorted(visible)}"

    return ClientMachine


@pytest.fixture(params=["embedded", "rabbitmq-mariadb"])
def deployment(request: pytest.FixtureRequest, bus_namespace: str) -> dict[str, Any]:
    if request.param == "embedded":
        return {"database_url": request.getfixturevalue("sqlite_url"), "amqp_url": None}
    return {"database_url": request.getfixturevalue("mariadb_url"),
            "amqp_url": request.getfixturevalue("amqp_url"), "namespace": bus_namespace}


@pytest.fixture
def system_runner(deployment: dict[str, Any], dev_certs: Path) -> Iterator[tuple[System, asyncio.Runner]]:
    """A running system on an event loop of the test's own: the machine's rules are plain
    methods, each running its step on this loop to the end."""
    with asyncio.Runner() as runner:
        context = running_system(deployment.pop("database_url"), certs_dir=dev_certs, **deployment)
        system = runner.run(context.__aenter__())
        try:
            yield system, runner
        finally:
            runner.run(context.__aexit__(None, None, None))


def test_any_sequence_of_sends_drops_restarts_ends_in_the_same_state(
    system_runner: tuple[System, asyncio.Runner],
) -> None:
    system, runner = system_runner
    run_state_machine_as_test(machine_for(system, runner), settings=MACHINE_SETTINGS)
