"""The local conversation store and the outbox: dedupe, id order, resend with original ids, and
what the outbox shows of one's own messages until they are stored."""

from __future__ import annotations

from datetime import UTC, datetime

from chase.schemas import AckFrame, ChatMessage, UserRef
from client.core.conversations import PUBLIC, ConversationStore, conversation_of
from client.core.outbox import Outbox, PendingState, new_client_msg_id

ALICE = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")
CAROL = UserRef(id=3, username="carol")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def msg(id: int, sender: UserRef = BOB, to: int | None = None, body: str = "hi") -> ChatMessage:
    return ChatMessage(id=id, sender=sender, recipient_id=to, body=body, created_at=T0, client_msg_id=f"c{id}")


def test_conversation_is_the_room_or_the_other_participant() -> None:
    assert conversation_of(msg(1), ALICE.id) is PUBLIC
    assert conversation_of(msg(2, BOB, ALICE.id), ALICE.id) == BOB.id
    assert conversation_of(msg(3, ALICE, CAROL.id), ALICE.id) == CAROL.id


def test_messages_are_kept_once_and_in_id_order_whatever_the_arrival_order() -> None:
    store = ConversationStore(ALICE.id)
    assert [m.id for m in store.add([msg(5), msg(2), msg(9)])] == [2, 5, 9]
    # A sync after a reconnect overlaps what arrived live: only 7 is new.
    assert [m.id for m in store.add([msg(5), msg(7), msg(9)])] == [7]
    assert [m.id for m in store.messages(PUBLIC)] == [2, 5, 7, 9]
    assert store.insert(msg(2)) is None
    assert store.insert(msg(1)) == (PUBLIC, 0)


def test_conversations_are_kept_apart() -> None:
    store = ConversationStore(ALICE.id)
    store.add([msg(1), msg(2, BOB, ALICE.id), msg(3, ALICE, BOB.id), msg(4, CAROL, ALICE.id)])
    assert [m.id for m in store.messages(BOB.id)] == [2, 3]
    assert [m.id for m in store.messages(CAROL.id)] == [4]
    assert [m.id for m in store.messages(PUBLIC)] == [1]
    assert store.max_id() == 4
    assert store.oldest_id(BOB.id) == 2
    assert 3 in store and 99 not in store


def test_history_marks_say_whether_older_pages_remain() -> None:
    store = ConversationStore(ALICE.id)
    assert store.has_more_before(PUBLIC) and not store.history_loaded(PUBLIC)
    store.mark_history(PUBLIC, has_more=False)
    assert not store.has_more_before(PUBLIC) and store.history_loaded(PUBLIC)


def test_outbox_resends_every_unacked_message_with_its_original_id_in_order() -> None:
    outbox = Outbox()
    first = outbox.add("one", None)
    second = outbox.add("two", BOB.id)
    third = outbox.add("three", None)
    outbox.ack(AckFrame(client_msg_id=second.client_msg_id, message_id=10, created_at=T0))
    resent = outbox.pending()
    assert [f.client_msg_id for f in resent] == [first.client_msg_id, third.client_msg_id]
    assert [f.body for f in resent] == ["one", "three"]
    # A duplicate ack (the resend of an already stored message) changes nothing.
    assert outbox.ack(AckFrame(client_msg_id=second.client_msg_id, message_id=10, created_at=T0)) is None
    assert outbox.drop(first.client_msg_id) == first
    assert len(outbox) == 1 and third.client_msg_id in outbox


def test_client_msg_ids_are_fresh_hex() -> None:
    ids = {new_client_msg_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_outbox_shows_pending_messages_per_conversation_with_their_state() -> None:
    written = datetime(2026, 1, 1, 9, 30).astimezone()
    outbox = Outbox(clock=lambda: written)
    room = outbox.add("one", None, state=PendingState.SENDING)
    private = outbox.add("two", BOB.id)
    later = outbox.add("three", None)
    assert outbox.messages(PUBLIC) == [room, later] and outbox.messages(BOB.id) == [private]
    assert (private.state, private.queued_at, private.reason) == (PendingState.WAITING, written, "")
    assert private.frame.recipient_id == BOB.id and private.frame.client_msg_id == private.client_msg_id
    # A change is reported once; the same state again is no change.
    retrying = outbox.mark(room.client_msg_id, PendingState.RETRYING, "try again shortly")
    assert retrying is not None and retrying.reason == "try again shortly"
    assert outbox.mark(room.client_msg_id, PendingState.RETRYING, "try again shortly") is None
    assert outbox.mark("unknown", PendingState.SENDING) is None
    assert outbox.messages(PUBLIC)[0] == retrying


def test_a_failed_message_is_still_shown_but_never_resent_nor_revived() -> None:
    outbox = Outbox()
    refused = outbox.add("to nobody", 99)
    kept = outbox.add("fine", None)
    failed = outbox.mark(refused.client_msg_id, PendingState.FAILED, "the recipient does not exist")
    assert failed is not None and outbox.messages(99) == [failed]
    assert outbox.pending() == [kept.frame] and len(outbox) == 1
    assert refused.client_msg_id not in outbox and outbox.get(refused.client_msg_id) is None
    assert outbox.entry(refused.client_msg_id) == failed
    # A late resend or a reconnect cannot bring it back to life.
    assert outbox.mark(refused.client_msg_id, PendingState.SENDING) is None
    assert outbox.drop(refused.client_msg_id) == failed and outbox.messages(99) == []
