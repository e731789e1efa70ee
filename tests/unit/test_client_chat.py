"""The chat client's connection logic against an in-memory gateway that implements the port.

The fake speaks the real frames (chase.schemas) and keeps the server's promises: ids in commit
order, dedupe by (sender, client_msg_id), the ack before the sender's own copy, sync after an
id, history newest first. The real gateway is exercised in tests/integration/test_client_core.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from chase.schemas import (
    AckFrame,
    ChatMessage,
    ErrorFrame,
    HelloFrame,
    HistoryFrame,
    HistoryPageFrame,
    Limits,
    MessageFrame,
    SendFrame,
    SyncFrame,
    SyncPageFrame,
    UserRef,
    decode_client_frame,
    encode,
)
from client.core.api import AuthSession
from client.core.backoff import BackoffPolicy
from client.core.chat import ChatClient
from client.core.conversations import PUBLIC
from client.core.errors import MessageRejected, ServerUnreachable, SessionExpired
from client.core.events import (
    ClientState,
    MessagesAdded,
    PendingAdded,
    PendingChanged,
    PendingStored,
    SessionEnded,
    Source,
    StateChanged,
)
from client.core.local import LocalState
from client.core.outbox import PendingMessage, PendingState
from client.core.transport import Connector, Link, LinkClosed
from tests.helpers import wait_until

ALICE = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WRITTEN = datetime(2026, 1, 1, 9, 30).astimezone()  # the injected local clock


class FakeLink(Link):
    def __init__(self, server: FakeGateway, user: UserRef) -> None:
        self.server, self.user = server, user
        self.inbox: asyncio.Queue[str | LinkClosed] = asyncio.Queue()
        self.closed = False

    async def send(self, text: str) -> None:
        if self.closed:
            raise LinkClosed(1006)
        self.server.handle(self, text)

    async def recv(self) -> str:
        item = await self.inbox.get()
        if isinstance(item, LinkClosed):
            self.closed = True
            raise item
        return item

    async def close(self) -> None:
        self.closed = True

    def push(self, text: str) -> None:
        self.inbox.put_nowait(text)


class FakeGateway(Connector):
    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self.links: list[FakeLink] = []
        self.up = True
        self.store_up = True
        self.revoked = False
        self.received: list[SendFrame] = []
        #: Sends received while ``store_up`` is False, until :meth:`store_held`.
        self.held: list[tuple[FakeLink, SendFrame]] = []
        #: When set, every send is answered with this error (its client_msg_id filled in).
        self.refusal: ErrorFrame | None = None
        #: The next ``refuse_frames`` frames of any kind get ``frame_refusal`` (ids filled in), as
        #: the gateway refuses every frame while its rate bucket is empty.
        self.refuse_frames = 0
        self.frame_refusal: ErrorFrame | None = None
        self.syncs: list[SyncFrame] = []
        self.max_body = 100

    async def connect(self, token: str) -> Link:
        if not self.up:
            raise ServerUnreachable("down")
        if token != "tok-alice":
            raise SessionExpired("bad token")
        link = FakeLink(self, ALICE)
        self.links = [old for old in self.links if not old.closed] + [link]
        limits = Limits(max_body_chars=self.max_body, max_frame_bytes=10_000, rate_per_second=1000, rate_burst=20)
        link.push(encode(HelloFrame(user=ALICE, session_id="s1", limits=limits, online_user_ids=[1])))
        return link

    def post(self, sender: UserRef, body: str, to: int | None = None, cmid: str | None = None,
             *, acked_on: FakeLink | None = None, live: bool = True) -> ChatMessage:
        """Store a message (once per sender and cmid), ack it on ``acked_on``, then fan it out
        (unless not ``live``: as if live delivery lost it)."""
        cmid = cmid or f"{sender.id}-{len(self.messages)}"
        known = next((m for m in self.messages if m.sender.id == sender.id and m.client_msg_id == cmid), None)
        prev = [m.id for m in self.messages if self._same_conversation(m, sender.id, to)]
        m = known or ChatMessage(id=len(self.messages) + 1, sender=sender, recipient_id=to, body=body,
                                 created_at=T0, client_msg_id=cmid, prev_id=prev[-1] if prev else None)
        if known is None:
            self.messages.append(m)
        if acked_on is not None:
            acked_on.push(encode(AckFrame(client_msg_id=cmid, message_id=m.id, created_at=m.created_at,
                                          duplicate=known is not None)))
        for link in self.links:
            if not link.closed and live:
                link.push(encode(MessageFrame(message=m)))
        return m

    @staticmethod
    def _same_conversation(m: ChatMessage, sender_id: int, to: int | None) -> bool:
        if to is None or m.recipient_id is None:
            return to is None and m.recipient_id is None
        return {m.sender.id, m.recipient_id} == {sender_id, to}

    def store_held(self, *, ack: bool) -> None:
        """Store the held sends; without ``ack`` as if the acks were lost with the link."""
        for link, frame in self.held:
            self.post(link.user, frame.body, frame.recipient_id, frame.client_msg_id,
                      acked_on=link if ack else None)
        self.held = []

    def drop(self, code: int = 1006) -> None:
        for link in self.links:
            if not link.closed:
                link.push(LinkClosed(code))  # type: ignore[arg-type]
        self.links = []

    def handle(self, link: FakeLink, text: str) -> None:
        frame = decode_client_frame(text)
        if self.refuse_frames and self.frame_refusal is not None:
            self.refuse_frames -= 1
            ids = {"client_msg_id": frame.client_msg_id} if isinstance(frame, SendFrame) else {
                "request_id": getattr(frame, "request_id", None)}
            link.push(encode(self.frame_refusal.model_copy(update=ids)))
            return
        if isinstance(frame, SyncFrame):
            self.syncs.append(frame)
        if isinstance(frame, SendFrame):
            self.received.append(frame)
            if self.refusal is not None:
                link.push(encode(self.refusal.model_copy(update={"client_msg_id": frame.client_msg_id})))
            elif self.store_up:
                self.post(link.user, frame.body, frame.recipient_id, frame.client_msg_id, acked_on=link)
            else:
                self.held.append((link, frame))
        elif isinstance(frame, SyncFrame):
            newer = [m for m in self.messages if m.id > frame.after_id]
            link.push(encode(SyncPageFrame(request_id=frame.request_id, messages=newer[: frame.limit],
                                           has_more=len(newer) > frame.limit)))
        elif isinstance(frame, HistoryFrame):
            mine = [m for m in self.messages if self._in(m, frame.with_user_id)
                    and (frame.before_id is None or m.id < frame.before_id)]
            page = list(reversed(mine))[: frame.limit]
            link.push(encode(HistoryPageFrame(request_id=frame.request_id, with_user_id=frame.with_user_id,
                                              messages=page, has_more=len(mine) > frame.limit)))

    @staticmethod
    def _in(m: ChatMessage, with_user: int | None) -> bool:
        if with_user is None:
            return m.recipient_id is None
        return m.recipient_id is not None and {m.sender.id, m.recipient_id} == {ALICE.id, with_user}


class Sleeps:
    """Records the backoff delays instead of waiting them out; ``hold`` makes them wait for us."""

    def __init__(self, hold: bool = False) -> None:
        self.delays: list[float] = []
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self.gate.wait()


SESSION = AuthSession(token="tok-alice", session_id="s1", user=ALICE, expires_at=T0)


def make_client(gateway: FakeGateway, sleeps: Sleeps | None = None, attempts: int = 5,
                page: int = 50, local: LocalState | None = None) -> tuple[ChatClient, list[object]]:
    client = ChatClient(gateway, SESSION, policy=BackoffPolicy(base=1, cap=8, max_attempts=attempts),
                        sleep=sleeps or Sleeps(), clock=lambda: WRITTEN, history_page=page, local=local)
    events: list[object] = []
    client.subscribe(events.append)
    return client, events


def ids(client: ChatClient, conversation: int | None = PUBLIC) -> list[int]:
    return [m.id for m in client.store.messages(conversation)]


async def test_start_loads_the_latest_room_page_and_newer_private_messages() -> None:
    gateway = FakeGateway()
    for n in range(5):
        gateway.post(BOB, f"old {n}")
    gateway.post(BOB, "psst", to=ALICE.id)
    client, _ = make_client(gateway, page=3)
    hello = await client.start()
    assert hello.user == ALICE and client.state is ClientState.CONNECTED
    assert ids(client) == [3, 4, 5]
    assert ids(client, BOB.id) == [6]
    await client.load_history(PUBLIC, older=True)
    assert ids(client) == [1, 2, 3, 4, 5]
    assert not client.store.has_more_before(PUBLIC)
    await client.close()


async def test_send_is_acked_and_shown_once_despite_the_echo() -> None:
    gateway = FakeGateway()
    client, events = make_client(gateway)
    await client.start()
    outgoing = await client.send("hello room")
    ack = await asyncio.wait_for(outgoing.acked, 5)
    assert ack.message_id == 1
    assert [m.body for m in client.store.messages(PUBLIC)] == ["hello room"]
    assert len(client.outbox) == 0
    await client.close()


async def test_reconnect_syncs_missed_messages_exactly_once_in_order() -> None:
    gateway = FakeGateway()
    sleeps = Sleeps(hold=True)
    client, events = make_client(gateway, sleeps)
    await client.start()
    gateway.post(BOB, "before")
    await wait_until(lambda: ids(client) == [1])
    gateway.up = False
    gateway.drop()
    await wait_until(lambda: client.state is ClientState.RECONNECTING and len(sleeps.delays) == 1)
    gateway.post(BOB, "while away 1")
    gateway.post(BOB, "while away private", to=ALICE.id)
    gateway.post(BOB, "while away 2")
    gateway.up = True
    sleeps.gate.set()
    await wait_until(lambda: client.state is ClientState.CONNECTED and ids(client) == [1, 2, 4])
    assert ids(client, BOB.id) == [3]
    synced = [e for e in events if isinstance(e, MessagesAdded) and e.source is Source.SYNC]
    assert sorted(m.id for e in synced for m in e.messages) == [2, 3, 4]
    assert all(0 <= d <= 8 for d in sleeps.delays)
    await client.close()


async def test_unacked_messages_are_resent_with_their_original_ids() -> None:
    gateway = FakeGateway()
    client, _ = make_client(gateway)
    await client.start()
    gateway.store_up = False  # the gateway receives the frame but never acknowledges it
    first = await client.send("one")
    second = await client.send("two", to=BOB.id)
    assert [f.client_msg_id for f in gateway.received] == [first.client_msg_id, second.client_msg_id]
    gateway.store_up = True
    gateway.drop()
    await asyncio.wait_for(asyncio.gather(first.acked, second.acked), 5)
    resent = [f.client_msg_id for f in gateway.received[2:]]
    assert resent == [first.client_msg_id, second.client_msg_id]
    assert [m.body for m in gateway.messages] == ["one", "two"]
    assert [m.body for m in client.store.messages(PUBLIC)] == ["one"]
    assert [m.body for m in client.store.messages(BOB.id)] == ["two"]
    await client.close()


async def test_after_the_fast_attempts_it_keeps_trying_slowly_and_retry_tries_at_once() -> None:
    gateway = FakeGateway()
    sleeps = Sleeps()
    client, events = make_client(gateway, sleeps, attempts=3)
    await client.start()
    gateway.up = False
    gateway.drop()
    await wait_until(lambda: len(sleeps.delays) >= 6)  # 3 fast attempts, then slow ones, for ever
    assert all(d <= 8 for d in sleeps.delays[:3]) and all(30 <= d <= 60 for d in sleeps.delays[3:6])
    assert client.state is ClientState.OFFLINE and client.next_attempt_at is not None
    offline = [e for e in events if isinstance(e, StateChanged) and e.state is ClientState.OFFLINE]
    assert offline[0].attempt == 4 and offline[0].next_attempt_at is not None
    sleeps.gate.clear()  # the next slow attempt is far away...
    await wait_until(lambda: len(sleeps.delays) >= 8)
    gateway.up = True
    client.retry()  # ...but the user asks: now
    await wait_until(lambda: client.state is ClientState.CONNECTED)
    assert client.next_attempt_at is None
    await client.close()


async def test_sending_while_offline_tries_to_reconnect_at_once() -> None:
    gateway = FakeGateway()
    sleeps = Sleeps()
    client, _ = make_client(gateway, sleeps, attempts=2)
    await client.start()
    gateway.up = False
    gateway.drop()
    await wait_until(lambda: client.state is ClientState.OFFLINE)
    sleeps.gate.clear()
    await wait_until(lambda: sleeps.gate.is_set() is False and client.state is ClientState.OFFLINE)
    gateway.up = True
    outgoing = await client.send("let me in")
    ack = await asyncio.wait_for(outgoing.acked, 5)
    assert [m.id for m in gateway.messages] == [ack.message_id]
    await client.close()


async def test_a_revoked_session_ends_with_session_ended() -> None:
    gateway = FakeGateway()
    client, events = make_client(gateway)
    await client.start()
    gateway.drop(code=4401)
    await wait_until(lambda: any(isinstance(e, SessionEnded) for e in events))
    assert client.state is ClientState.OFFLINE
    await client.close()


async def test_a_refused_token_at_start_raises_session_expired() -> None:
    gateway = FakeGateway()
    bad = AuthSession(token="nope", session_id="x", user=ALICE, expires_at=T0)
    with pytest.raises(SessionExpired):
        await ChatClient(gateway, bad).start()


async def test_unknown_frames_are_ignored() -> None:
    gateway = FakeGateway()
    client, _ = make_client(gateway)
    await client.start()
    gateway.links[-1].push('{"type": "telepathy", "thought": 42}')
    gateway.links[-1].push("not json at all")
    gateway.post(BOB, "still here")
    await wait_until(lambda: ids(client) == [1])
    assert client.state is ClientState.CONNECTED
    await client.close()


async def test_too_long_or_empty_messages_are_refused_before_sending() -> None:
    gateway = FakeGateway()
    client, _ = make_client(gateway)
    await client.start()
    with pytest.raises(MessageRejected, match="limit is 100"):
        await client.send("x" * 101)
    with pytest.raises(MessageRejected):
        await client.send("   \n")
    assert gateway.received == [] and len(client.outbox) == 0
    await client.close()


# --- one's own messages before they are stored (pending) -------------------------------------


def pending_events(events: list[object]) -> list[tuple[str, str]]:
    """(event, state) for each pending event: the life of one's own unstored messages."""
    seen: list[tuple[str, str]] = []
    for e in events:
        if isinstance(e, PendingAdded | PendingChanged):
            seen.append((type(e).__name__, e.message.state.value))
        elif isinstance(e, PendingStored):
            seen.append(("PendingStored", str(e.message.id)))
    return seen


async def test_a_sent_message_is_pending_until_its_ack_turns_it_into_the_stored_message() -> None:
    gateway = FakeGateway()
    client, events = make_client(gateway)
    await client.start()
    gateway.store_up = False  # received, not yet acknowledged
    outgoing = await client.send("hello room")
    assert client.pending(PUBLIC) == [PendingMessage(outgoing.client_msg_id, PUBLIC, "hello room", WRITTEN,
                                                     PendingState.SENDING)]
    assert client.store.messages(PUBLIC) == [] and client.pending(BOB.id) == []
    gateway.store_up = True
    gateway.store_held(ack=True)  # the ack, then the live copy of one's own message
    ack = await asyncio.wait_for(outgoing.acked, 5)
    assert ack.message_id == 1 and client.pending(PUBLIC) == []
    gateway.post(BOB, "after")  # read after the live copy, so that copy has been handled too
    await wait_until(lambda: ids(client) == [1, 2])
    assert [m.body for m in client.store.messages(PUBLIC)] == ["hello room", "after"]
    assert pending_events(events) == [("PendingAdded", "sending"), ("PendingStored", str(ack.message_id))]
    stored = next(e for e in events if isinstance(e, PendingStored))
    assert stored.client_msg_id == outgoing.client_msg_id and stored.conversation is PUBLIC
    # The pending entry is replaced before MessagesAdded carries the message, which comes once.
    after = events[events.index(stored) + 1:]
    added = [m for e in after if isinstance(e, MessagesAdded) for m in e.messages]
    assert [m.id for m in added] == [ack.message_id, 2]  # one's own once (the live copy dropped), then bob's
    await client.close()


async def test_a_message_written_offline_waits_then_is_sent_and_stored_once() -> None:
    gateway = FakeGateway()
    sleeps = Sleeps(hold=True)
    client, events = make_client(gateway, sleeps)
    await client.start()
    gateway.up = False
    gateway.drop()
    await wait_until(lambda: client.state is ClientState.RECONNECTING and len(sleeps.delays) == 1)
    outgoing = await client.send("written offline", to=BOB.id)
    assert [(p.body, p.state) for p in client.pending(BOB.id)] == [("written offline", PendingState.WAITING)]
    assert gateway.received == []
    gateway.up = True
    sleeps.gate.set()
    ack = await asyncio.wait_for(outgoing.acked, 5)
    await wait_until(lambda: ids(client, BOB.id) == [ack.message_id])
    assert client.pending(BOB.id) == [] and len(client.outbox) == 0
    assert pending_events(events) == [("PendingAdded", "waiting"), ("PendingChanged", "sending"),
                                      ("PendingStored", str(ack.message_id))]
    await client.close()


async def test_a_message_stored_before_its_ack_came_is_settled_by_the_sync_not_resent() -> None:
    gateway = FakeGateway()
    sleeps = Sleeps(hold=True)
    client, events = make_client(gateway, sleeps)
    await client.start()
    gateway.store_up = False
    outgoing = await client.send("ack lost")
    gateway.drop()  # the link dies before the ack...
    await wait_until(lambda: [p.state for p in client.pending(PUBLIC)] == [PendingState.WAITING])
    gateway.store_up = True
    gateway.store_held(ack=False)  # ...but the message was stored
    sleeps.gate.set()
    ack = await asyncio.wait_for(outgoing.acked, 5)  # made from the synced message
    assert ack.message_id == 1 and ack.client_msg_id == outgoing.client_msg_id
    await wait_until(lambda: client.state is ClientState.CONNECTED)
    assert ids(client) == [1] and client.pending(PUBLIC) == []
    assert [f.client_msg_id for f in gateway.received] == [outgoing.client_msg_id]  # never resent
    assert pending_events(events) == [("PendingAdded", "sending"), ("PendingChanged", "waiting"),
                                      ("PendingStored", "1")]
    await client.close()


async def test_a_refused_message_stays_shown_as_failed_with_the_reason_and_is_never_resent() -> None:
    gateway = FakeGateway()
    client, events = make_client(gateway)
    await client.start()
    gateway.refusal = ErrorFrame(code="recipient_unknown", message="the recipient does not exist")
    outgoing = await client.send("anyone there?", to=99)
    with pytest.raises(MessageRejected, match="the recipient does not exist"):
        await asyncio.wait_for(outgoing.acked, 5)
    [failed] = client.pending(99)
    assert (failed.state, failed.reason, failed.body) == (PendingState.FAILED, "the recipient does not exist",
                                                          "anyone there?")
    assert len(client.outbox) == 0 and client.outbox.pending() == []
    gateway.refusal = None
    gateway.drop()  # a reconnect resends what is unacknowledged: not this one
    await wait_until(lambda: client.state is ClientState.CONNECTED and len(gateway.links) == 1)
    await (await client.send("next")).acked
    assert [f.body for f in gateway.received] == ["anyone there?", "next"]
    assert [p.state for p in client.pending(99)] == [PendingState.FAILED]
    assert pending_events(events)[:2] == [("PendingAdded", "sending"), ("PendingChanged", "failed")]
    await client.close()


async def test_a_retryable_refusal_shows_retrying_with_the_reason_then_the_resend_is_stored() -> None:
    gateway = FakeGateway()
    sleeps = Sleeps(hold=True)
    client, events = make_client(gateway, sleeps)
    await client.start()
    gateway.refusal = ErrorFrame(code="unavailable", message="messages cannot be stored right now",
                                 retryable=True)
    outgoing = await client.send("soon")
    await wait_until(lambda: [p.state for p in client.pending(PUBLIC)] == [PendingState.RETRYING])
    assert client.pending(PUBLIC)[0].reason == "messages cannot be stored right now"
    gateway.refusal = None
    sleeps.gate.set()  # the pause before the resend is over
    ack = await asyncio.wait_for(outgoing.acked, 5)
    assert ids(client) == [ack.message_id] and client.pending(PUBLIC) == []
    assert pending_events(events) == [("PendingAdded", "sending"), ("PendingChanged", "retrying"),
                                      ("PendingChanged", "sending"), ("PendingStored", str(ack.message_id))]
    await client.close()
