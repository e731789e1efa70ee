"""Delivery rules of the client core, against the in-memory gateway of test_client_chat.

Strict per-sender order (a refusal pauses the whole outbox, resends never overtake), gap
detection from ``prev_id`` and ``resync``, catch-up independent of sending, what is loaded at
login, and the outbox kept on disk across sessions.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from chase.schemas import ChatMessage, ErrorFrame, ResyncFrame, SendFrame, decode_client_frame, encode
from client.core.conversations import PUBLIC
from client.core.events import ClientState, MessagesAdded, Source
from client.core.local import LocalState, account_file
from client.core.outbox import PendingState
from client.core.sending import retry_after
from tests.helpers import wait_until
from tests.unit.test_client_chat import ALICE, BOB, T0, FakeGateway, FakeLink, Sleeps, ids, make_client

RATE_LIMITED = ErrorFrame(code="rate_limited", message="too many frames; retry in 0.25s", retryable=True)
UNAVAILABLE = ErrorFrame(code="unavailable", message="messages cannot be stored right now", retryable=True)


def stored_bodies(gateway: FakeGateway) -> list[str]:
    return [m.body for m in gateway.messages]


# --- strict order ---------------------------------------------------------------------------


async def test_a_rate_limited_send_pauses_the_whole_outbox_and_nothing_overtakes_it() -> None:
    gateway = FakeGateway()

    class RefillingSleeps(Sleeps):
        async def __call__(self, seconds: float) -> None:
            gateway.refuse_frames = 0  # the pause lets the gateway's bucket refill
            await super().__call__(seconds)

    sleeps = RefillingSleeps()
    client, _ = make_client(gateway, sleeps)
    await client.start()
    first = [await client.send(f"m{n}") for n in range(2)]
    await asyncio.wait_for(asyncio.gather(*(o.acked for o in first)), 5)
    # The bucket runs dry: every frame is refused until the client has paused.
    gateway.refuse_frames, gateway.frame_refusal = 10**6, RATE_LIMITED
    rest = [await client.send(f"m{n}") for n in range(2, 12)]
    await asyncio.wait_for(asyncio.gather(*(o.acked for o in rest)), 5)
    assert stored_bodies(gateway) == [f"m{n}" for n in range(12)]
    assert sleeps.delays == [0.25]  # one pause for the whole outbox, as long as the server asked
    # The refused ones went again from the first refused on, in order.
    sent = [f.body for f in gateway.received]
    assert sent[-10:] == [f"m{n}" for n in range(2, 12)]
    await client.close()


async def test_an_unavailable_store_pauses_then_everything_goes_in_order() -> None:
    gateway = FakeGateway()
    sleeps = Sleeps(hold=True)
    client, _ = make_client(gateway, sleeps)
    await client.start()
    gateway.refuse_frames, gateway.frame_refusal = 100, UNAVAILABLE
    outgoing = [await client.send(f"m{n}") for n in range(8)]
    await wait_until(lambda: len(sleeps.delays) == 1)  # one pause for the whole outbox
    assert all(p.state in (PendingState.RETRYING, PendingState.SENDING) for p in client.pending(PUBLIC))
    gateway.refuse_frames = 0
    sleeps.gate.set()
    await asyncio.wait_for(asyncio.gather(*(o.acked for o in outgoing)), 5)
    assert stored_bodies(gateway) == [f"m{n}" for n in range(8)]
    await client.close()


async def test_messages_queued_offline_go_out_in_order_after_the_sync() -> None:
    gateway = FakeGateway()
    client, _ = make_client(gateway, Sleeps(hold=True))
    await client.start()
    gateway.up = False
    gateway.drop()
    await wait_until(lambda: client.state is not ClientState.CONNECTED)
    outgoing = [await client.send(f"m{n}") for n in range(45)]
    assert [p.state for p in client.pending(PUBLIC)] == [PendingState.WAITING] * 45
    gateway.up = True
    client.retry()
    await asyncio.wait_for(asyncio.gather(*(o.acked for o in outgoing)), 10)
    assert stored_bodies(gateway) == [f"m{n}" for n in range(45)]
    assert [p.body for p in client.pending(PUBLIC)] == []
    await client.close()


def test_the_pause_is_the_one_the_server_named() -> None:
    assert retry_after(RATE_LIMITED, fallback=1.0) == 0.25
    assert retry_after(ErrorFrame(code="rate_limited", message="slow down"), fallback=1.0) == 1.0


# --- gaps and resync ------------------------------------------------------------------------


async def test_a_live_message_after_an_unknown_one_triggers_a_sync_that_fetches_it() -> None:
    gateway = FakeGateway()
    client, events = make_client(gateway)
    await client.start()
    syncs = len(gateway.syncs)
    gateway.post(BOB, "lost on the way", live=False)
    gateway.post(BOB, "arrives")  # prev_id = 1, unknown and above the cursor
    await wait_until(lambda: ids(client) == [1, 2])
    assert len(gateway.syncs) == syncs + 1
    synced = [m.body for e in events if isinstance(e, MessagesAdded) and e.source is Source.SYNC
              for m in e.messages]
    assert synced == ["lost on the way"]
    await client.close()


async def test_no_sync_when_the_previous_message_is_known_or_there_is_none() -> None:
    gateway = FakeGateway()
    client, _ = make_client(gateway)
    await client.start()
    syncs = len(gateway.syncs)
    gateway.post(BOB, "first")        # prev_id None
    gateway.post(BOB, "second")       # prev_id 1, known
    gateway.post(BOB, "psst", to=ALICE.id)  # a new private conversation: prev_id None
    await wait_until(lambda: ids(client) == [1, 2] and ids(client, BOB.id) == [3])
    assert len(gateway.syncs) == syncs
    await client.close()


def test_the_gap_rule_on_plain_frames() -> None:
    from client.core.backoff import BackoffPolicy
    from client.core.conversations import ConversationStore
    from client.core.events import EventHub
    from client.core.history import History
    from client.core.requests import PendingRequests

    store = ConversationStore(ALICE.id)

    def message(id_: int, prev: int | None) -> ChatMessage:
        return ChatMessage(id=id_, sender=BOB, recipient_id=None, body="x", created_at=T0,
                           client_msg_id=f"c{id_}", prev_id=prev)

    store.add([message(7, None)])
    history = History(store, EventHub(), add=lambda m, s: m, requests=PendingRequests(), link=lambda: None,
                      timeout=1, page_size=10, policy=BackoffPolicy(), sleep=asyncio.sleep, cursor=5)
    assert history.is_gap(message(9, 8))          # 8 is above the cursor and unknown
    assert not history.is_gap(message(9, 7))      # known
    assert not history.is_gap(message(9, 4))      # at or below the cursor: a sync covered it
    assert not history.is_gap(message(9, 5))
    assert not history.is_gap(message(9, None))   # the first of its conversation


async def test_a_resync_frame_syncs_at_once() -> None:
    gateway = FakeGateway()
    client, _ = make_client(gateway)
    await client.start()
    gateway.post(BOB, "missed while the gateway's queue was gone", live=False)
    gateway.links[0].push(encode(ResyncFrame(reason="subscription re-established")))
    await wait_until(lambda: ids(client) == [1])
    await client.close()


# --- catch-up and sending are independent ----------------------------------------------------


async def test_an_unavailable_sync_does_not_hold_the_outbox_and_is_retried() -> None:
    gateway = FakeGateway()
    sleeps = Sleeps(hold=True)
    client, _ = make_client(gateway, sleeps)
    await client.start()
    gateway.up = False
    gateway.drop()
    await wait_until(lambda: client.state is not ClientState.CONNECTED and len(sleeps.delays) == 1)
    outgoing = await client.send("queued")
    gateway.post(BOB, "missed")
    # The first sync after the reconnect is refused: the outbox goes anyway, the sync comes later.
    gateway.up, gateway.refuse_frames, gateway.frame_refusal = True, 1, ErrorFrame(
        code="unavailable", message="the store did not answer", retryable=True)
    sleeps.gate.set()
    ack = await asyncio.wait_for(outgoing.acked, 5)
    await wait_until(lambda: ids(client) == [1, ack.message_id])
    assert len(gateway.syncs) >= 2  # the refused one was not counted; it was tried again
    await client.close()


# --- login loads what was missed ---------------------------------------------------------------


async def test_login_loads_private_messages_older_than_the_newest_public_one() -> None:
    gateway = FakeGateway()
    gateway.post(BOB, "room 1")
    gateway.post(BOB, "psst while you were away", to=ALICE.id)
    gateway.post(BOB, "room 2")
    client, _ = make_client(gateway)
    await client.start()
    assert ids(client) == [1, 3] and ids(client, BOB.id) == [2]
    await client.close()


async def test_login_continues_from_the_cursor_kept_from_the_last_session(tmp_path: Path) -> None:
    gateway = FakeGateway()
    path = account_file(tmp_path, "https://127.0.0.1:8443", ALICE.id)
    first, _ = make_client(gateway, local=LocalState(path, ALICE.id).load())
    await first.start()
    gateway.post(BOB, "seen")
    await wait_until(lambda: ids(first) == [1])
    await first.close()
    gateway.post(BOB, "private, long ago", to=ALICE.id)
    for n in range(5):
        gateway.post(BOB, f"room {n}")
    again, _ = make_client(gateway, page=2, local=LocalState(path, ALICE.id).load())
    await again.start()
    assert ids(again, BOB.id) == [2]  # older than the whole public page, still loaded
    await again.close()


# --- the outbox kept on disk -----------------------------------------------------------------


async def test_unsent_messages_survive_the_session_and_go_with_their_ids(tmp_path: Path) -> None:
    gateway = FakeGateway()
    path = account_file(tmp_path, "https://chat.example:8443", ALICE.id)
    client, _ = make_client(gateway, Sleeps(hold=True), local=LocalState(path, ALICE.id).load())
    await client.start()
    gateway.up = False
    gateway.drop()
    await wait_until(lambda: client.state is not ClientState.CONNECTED)
    queued = [await client.send(f"m{n}", to=BOB.id if n == 1 else None) for n in range(3)]
    assert client.unsent == 3 and client.keeps_unsent
    await client.close()  # logout, window closed, app quit: all the same here

    kept = LocalState(path, ALICE.id).load()
    assert [m.client_msg_id for m in kept.outbox] == [o.client_msg_id for o in queued]
    gateway.up = True
    again, _ = make_client(gateway, local=kept)
    await again.start()
    await wait_until(lambda: again.unsent == 0)
    assert [(m.body, m.client_msg_id) for m in gateway.messages] == [
        (f"m{n}", o.client_msg_id) for n, o in enumerate(queued)]
    assert LocalState(path, ALICE.id).load().outbox == []
    await again.close()


async def test_discarding_unsent_messages_forgets_them_on_disk(tmp_path: Path) -> None:
    gateway = FakeGateway()
    path = account_file(tmp_path, "https://chat.example:8443", ALICE.id)
    client, _ = make_client(gateway, Sleeps(hold=True), local=LocalState(path, ALICE.id).load())
    await client.start()
    gateway.up = False
    gateway.drop()
    await wait_until(lambda: client.state is not ClientState.CONNECTED)
    await client.send("never mind")
    assert client.discard_unsent() == 1 and client.unsent == 0
    await client.close()
    assert LocalState(path, ALICE.id).load().outbox == []


def test_a_broken_state_file_is_set_aside_not_trusted(tmp_path: Path) -> None:
    path = account_file(tmp_path, "https://chat.example:8443", ALICE.id)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert LocalState(path, ALICE.id).load().outbox == []
    assert path.with_suffix(".broken").exists() and not path.exists()
    other = account_file(tmp_path, "https://chat.example:8443", BOB.id)
    LocalState(other, BOB.id, cursor=3).save()
    other.rename(path)  # someone else's file under this account's name
    assert LocalState(path, ALICE.id).load().cursor is None



async def test_no_more_than_the_window_waits_for_acks_and_the_rest_follow_in_order() -> None:
    gateway = FakeGateway()
    client, _ = make_client(gateway)
    await client.start()
    gateway.store_up = False  # sends are taken but not answered yet
    outgoing = [await client.send(f"m{n}") for n in range(12)]
    await wait_until(lambda: len(gateway.received) == 5)  # a quarter of the burst (20)
    await asyncio.sleep(0.05)
    assert len(gateway.received) == 5
    gateway.store_up = True
    gateway.store_held(ack=True)
    await asyncio.wait_for(asyncio.gather(*(o.acked for o in outgoing)), 5)
    assert stored_bodies(gateway) == [f"m{n}" for n in range(12)]
    await client.close()


async def test_the_pacer_lets_a_burst_through_then_spaces_frames_at_the_rate() -> None:
    from client.core.pacing import Pacer

    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    pacer = Pacer(rate=10.0, burst=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await pacer.take()
    assert [round(w, 6) for w in waits] == [0.1, 0.1]


def test_one_client_at_a_time_keeps_an_accounts_file(tmp_path: Path) -> None:
    path = account_file(tmp_path, "https://chat.example:8443", ALICE.id)
    first, second = LocalState(path, ALICE.id), LocalState(path, ALICE.id)
    assert first.acquire()
    assert not second.acquire()  # it runs without keeping anything on disk
    first.release()
    assert second.acquire()
    second.release()


class ChaoticGateway(FakeGateway):
    """Refuses runs of frames and drops the link after storing a send but before its ack, at
    random. A run of refusals (an empty rate bucket, a store outage) refuses every frame until
    the client sends again the first frame it refused: whatever the client does meanwhile, a
    later message must not be stored first."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.refusals_left, self.drops_left = 8, 3
        self.refusing: tuple[str, str | None] | None = None  # (frame type, client_msg_id) of the first refused

    def handle(self, link: FakeLink, text: str) -> None:
        if link not in self.links:
            return  # written to a connection the gateway has already dropped: lost
        frame = decode_client_frame(text)
        key = (frame.type, frame.client_msg_id if isinstance(frame, SendFrame) else None)
        if self.refusing == key:
            self.refusing = None  # sent again: the run is over
        elif self.refusing is None and self.refusals_left and self.rng.random() < 0.1:
            self.refusals_left -= 1
            self.refusing, self.frame_refusal = key, self.rng.choice([RATE_LIMITED, UNAVAILABLE])
        if self.refusing is not None:
            self.refuse_frames = 1
        elif isinstance(frame, SendFrame) and self.drops_left and self.rng.random() < 0.05:
            self.drops_left -= 1
            self.received.append(frame)
            self.post(link.user, frame.body, frame.recipient_id, frame.client_msg_id)  # stored, ack lost
            self.drop()
            return
        super().handle(link, text)

    def drop(self, code: int = 1006) -> None:
        self.refusing = None  # a new connection has a new bucket
        super().drop(code)


@pytest.mark.parametrize("seed", range(20))
async def test_whatever_is_refused_or_dropped_the_stored_order_is_the_written_order(seed: int) -> None:
    gateway = ChaoticGateway(random.Random(seed))
    client, _ = make_client(gateway)
    await client.start()
    outgoing = []
    for n in range(30):
        outgoing.append(await client.send(f"m{n:02d}", to=BOB.id if n % 3 == 0 else None))
        if n % 7 == 0:
            await asyncio.sleep(0)  # let answers in between some sends
    await asyncio.wait_for(asyncio.gather(*(o.acked for o in outgoing)), 10)
    assert stored_bodies(gateway) == [f"m{n:02d}" for n in range(30)]  # each once, in order
    assert client.unsent == 0
    await client.close()
