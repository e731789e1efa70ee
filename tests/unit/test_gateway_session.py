"""The gateway's per-connection logic, sans-I/O: frames in, actions out, plain pytest."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chase import routing
from chase.clock import FakeClock
from chase.schemas import (
    MAX_ID,
    AckFrame,
    ChatMessage,
    ErrorFrame,
    HelloFrame,
    HistoryPageFrame,
    HistoryQuery,
    Limits,
    MessageFrame,
    MessagePage,
    MessageRejected,
    MessageStored,
    MessageSubmitted,
    PongFrame,
    QueryFailed,
    SessionRevoked,
    StoreStatus,
    SyncPageFrame,
    SyncQuery,
    UserRef,
)
from services.gateway.availability import StoreAvailability
from services.gateway.errors import CloseCode, ErrorCode
from services.gateway.ratelimit import TokenBucket
from services.gateway.session import Close, ConnectionSession, Publish, Query, Send

ALICE = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")
CAROL = UserRef(id=3, username="carol")
LIMITS = Limits(max_body_chars=10, max_frame_bytes=300, rate_per_second=2, rate_burst=5)


def session(user: UserRef = ALICE, clock: FakeClock | None = None, **kw: object) -> ConnectionSession:
    return ConnectionSession(user, f"sess-{user.id}", LIMITS, clock or FakeClock(), **kw)


def frame(**fields: object) -> str:
    return json.dumps(fields)


def only_error(actions: list) -> ErrorFrame:
    assert len(actions) == 1 and isinstance(actions[0], Send), actions
    assert isinstance(actions[0].frame, ErrorFrame), actions[0].frame
    return actions[0].frame


def stored(sender: UserRef, cid: str, *, recipient: int | None = None, mid: int = 7, dup: bool = False) -> MessageStored:
    msg = ChatMessage(
        id=mid, sender=sender, recipient_id=recipient, body="hi",
        created_at=datetime(2026, 1, 1, tzinfo=UTC), client_msg_id=cid,
    )
    return MessageStored(message=msg, duplicate=dup)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("{not json", ErrorCode.INVALID_FRAME),
        ("[1, 2]", ErrorCode.INVALID_FRAME),
        ("null", ErrorCode.INVALID_FRAME),
        ("{}", ErrorCode.INVALID_FRAME),
        (frame(type="shout", body="x"), ErrorCode.UNKNOWN_TYPE),
        (frame(type="send", client_msg_id="c1"), ErrorCode.INVALID_FRAME),
        (frame(type="send", body="x"), ErrorCode.INVALID_FRAME),
        (frame(type="send", client_msg_id="bad id!", body="x"), ErrorCode.INVALID_FRAME),
        (frame(type="history", limit=100000), ErrorCode.INVALID_FRAME),
        (frame(type="sync", after_id=-1), ErrorCode.INVALID_FRAME),
        (b"\xff\xfe\x00", ErrorCode.INVALID_FRAME),
    ],
)
def test_bad_frames_get_an_error_and_nothing_else(data: str | bytes, code: ErrorCode) -> None:
    s = session()
    error = only_error(s.receive_text(data))
    assert error.code == code
    assert error.message
    assert not error.retryable
    # The connection goes on: the next good frame is served.
    assert s.receive_text(frame(type="ping", request_id="r")) == [Send(PongFrame(request_id="r"))]


@pytest.mark.parametrize(
    "data",
    [
        # Types are strict (docs/protocol.md section 1): no string or bool for an integer, no
        # number for a string, no float for an integer.
        frame(type="history", with_user_id="5"),
        frame(type="history", with_user_id=True),
        frame(type="history", limit=5.0),
        frame(type="sync", after_id="5"),
        frame(type="sync", after_id=True),
        frame(type="send", client_msg_id=5, body="x"),
        frame(type="send", client_msg_id="c1", body=5),
        frame(type="ping", request_id=5),
        # Ids are 64-bit: one past MAX_ID is refused, never echoed back.
        frame(type="history", with_user_id=MAX_ID + 1),
        frame(type="history", before_id=MAX_ID + 1),
        frame(type="sync", after_id=MAX_ID + 1),
        frame(type="send", client_msg_id="c1", body="x", recipient_id=MAX_ID + 1),
    ],
)
def test_ill_typed_or_out_of_range_fields_are_invalid_frames(data: str) -> None:
    s = session()
    error = only_error(s.receive_text(data))
    assert error.code == ErrorCode.INVALID_FRAME
    assert s.pending == frozenset()


def test_the_largest_id_is_asked_for_and_echoed() -> None:
    s = session()
    [query] = s.receive_text(frame(type="history", request_id="h", with_user_id=MAX_ID, before_id=MAX_ID))
    assert isinstance(query, Query) and query.request.with_user_id == MAX_ID
    [reply] = s.query_replied(query, MessagePage(messages=[], has_more=False))
    assert isinstance(reply.frame, HistoryPageFrame) and reply.frame.with_user_id == MAX_ID


@pytest.mark.parametrize("kind", [5, None, True, ["send"], {"send": 1}])
def test_a_type_that_is_not_a_string_is_an_unknown_type(kind: object) -> None:
    # docs/protocol.md section 5: any "type" other than the four names, whatever its JSON type.
    error = only_error(session().receive_text(frame(type=kind, request_id="r1")))
    assert (error.code, error.request_id) == (ErrorCode.UNKNOWN_TYPE, "r1")


def test_missing_field_is_named_and_the_client_msg_id_is_echoed() -> None:
    error = only_error(session().receive_text(frame(type="send", client_msg_id="c1")))
    assert "body" in error.message
    assert error.client_msg_id == "c1"


def test_a_client_cannot_set_the_sender() -> None:
    data = frame(type="send", client_msg_id="c1", body="hi", sender={"id": 2, "username": "bob"})
    error = only_error(session().receive_text(data))
    assert error.code == ErrorCode.INVALID_FRAME
    assert "sender" in error.message


def test_the_sender_is_always_the_authenticated_user() -> None:
    s = session(ALICE)
    [action] = s.receive_text(frame(type="send", client_msg_id="c1", recipient_id=2, body="hi bob"))
    assert isinstance(action, Publish)
    assert action.routing_key == routing.MESSAGE_SUBMITTED
    assert isinstance(action.event, MessageSubmitted)
    assert action.event.sender == ALICE
    assert action.event.recipient_id == 2
    assert action.event.body == "hi bob"
    assert s.pending == {"c1"}


@pytest.mark.parametrize("body", ["", "   ", "\n\t \u3000"])
def test_empty_or_whitespace_body(body: str) -> None:
    s = session()
    error = only_error(s.receive_text(frame(type="send", client_msg_id="c1", body=body)))
    assert error.code == ErrorCode.BODY_EMPTY
    assert error.client_msg_id == "c1"
    assert s.pending == frozenset()


def test_body_over_the_limit_counts_characters_not_bytes() -> None:
    s = session()
    # Ten emoji are 40 bytes but ten characters: allowed.
    assert isinstance(s.receive_text(frame(type="send", client_msg_id="ok", body="😀" * 10))[0], Publish)
    error = only_error(s.receive_text(frame(type="send", client_msg_id="c2", body="x" * 11)))
    assert error.code == ErrorCode.BODY_TOO_LONG
    assert "10" in error.message


def test_oversize_frame_is_refused_before_parsing() -> None:
    s = session()
    data = frame(type="send", client_msg_id="c1", body="x" * 400)
    assert only_error(s.receive_text(data)).code == ErrorCode.FRAME_TOO_LARGE
    assert only_error(s.receive_text(data.encode())).code == ErrorCode.FRAME_TOO_LARGE
    assert s.pending == frozenset()


def test_flood_is_rate_limited_then_recovers() -> None:
    clock = FakeClock()
    s = session(clock=clock)
    ping = frame(type="ping")
    results = [s.receive_text(ping) for _ in range(LIMITS.rate_burst + 3)]
    assert all(r == [Send(PongFrame())] for r in results[: LIMITS.rate_burst])
    for r in results[LIMITS.rate_burst :]:
        error = only_error(r)
        assert error.code == ErrorCode.RATE_LIMITED
        assert error.retryable
    clock.advance(1 / LIMITS.rate_per_second)
    assert s.receive_text(ping) == [Send(PongFrame())]


def test_a_rate_limited_send_is_named_so_the_client_can_resend_it() -> None:
    s = session()
    for _ in range(LIMITS.rate_burst):
        s.receive_text(frame(type="ping"))
    error = only_error(s.receive_text(frame(type="send", client_msg_id="late-1", body="hi")))
    assert (error.code, error.client_msg_id, error.retryable) == (ErrorCode.RATE_LIMITED, "late-1", True)
    assert s.pending == frozenset()


def test_a_rate_limited_request_carries_its_request_id() -> None:
    s = session()
    for _ in range(LIMITS.rate_burst):
        s.receive_text(frame(type="ping"))
    error = only_error(s.receive_text(frame(type="history", request_id="h-9")))
    assert (error.code, error.request_id, error.client_msg_id) == (ErrorCode.RATE_LIMITED, "h-9", None)


def test_sustained_flood_closes_the_connection() -> None:
    s = session(flood_strikes=3)
    for _ in range(LIMITS.rate_burst):
        s.receive_text(frame(type="ping"))
    for _ in range(3):
        assert only_error(s.receive_text(frame(type="ping"))).code == ErrorCode.RATE_LIMITED
    assert s.receive_text(frame(type="ping")) == [Close(CloseCode.POLICY_VIOLATION, "too many frames")]


def test_token_bucket_caps_savings_at_burst() -> None:
    bucket = TokenBucket(rate=1, burst=2, now=0)
    assert bucket.take(0) and bucket.take(0) and not bucket.take(0)
    assert bucket.retry_after(0) == pytest.approx(1.0)
    assert bucket.take(100) and bucket.take(100) and not bucket.take(100)


# --- hello, queries -------------------------------------------------------------------------


def test_hello_lists_limits_and_online_users() -> None:
    [hello] = [a.frame for a in session().start([3, 1, 3])]
    assert isinstance(hello, HelloFrame)
    assert hello.user == ALICE and hello.session_id == "sess-1"
    assert hello.limits == LIMITS
    assert hello.online_user_ids == [1, 3]


def test_history_query_is_asked_as_the_authenticated_viewer() -> None:
    s = session(CAROL)
    [query] = s.receive_text(frame(type="history", request_id="h1", with_user_id=1, limit=20))
    assert isinstance(query, Query)
    assert query.request == HistoryQuery(viewer_id=3, with_user_id=1, before_id=None, limit=20)
    assert query.request_id == "h1"


def test_history_page_drops_anything_the_viewer_may_not_see() -> None:
    s = session(CAROL)
    [query] = s.receive_text(frame(type="history", request_id="h1", with_user_id=1))
    theirs = stored(ALICE, "x", recipient=2, mid=5).message
    mine = stored(ALICE, "y", recipient=3, mid=6).message
    [page] = [a.frame for a in s.query_replied(query, MessagePage(messages=[mine, theirs], has_more=False))]
    assert isinstance(page, HistoryPageFrame)
    assert page.request_id == "h1" and page.with_user_id == 1
    assert [m.id for m in page.messages] == [6]


def test_sync_page_and_failures() -> None:
    s = session(BOB)
    [query] = s.receive_text(frame(type="sync", request_id="s1", after_id=4))
    assert query.request == SyncQuery(viewer_id=2, after_id=4, limit=200)
    [page] = [a.frame for a in s.query_replied(query, MessagePage(messages=[], has_more=True))]
    assert page == SyncPageFrame(request_id="s1", messages=[], has_more=True)
    error = only_error(s.query_replied(query, QueryFailed(code="store_unavailable", reason="db down")))
    assert error.code == ErrorCode.UNAVAILABLE and error.retryable and error.request_id == "s1"
    error = only_error(s.query_failed(query, ErrorCode.UNAVAILABLE, "timeout"))
    assert error.code == ErrorCode.UNAVAILABLE and error.request_id == "s1"


# --- acks and fan-out decisions ---------------------------------------------------------------


def test_stored_message_acks_the_sender_then_shows_it() -> None:
    s = session(ALICE)
    s.receive_text(frame(type="send", client_msg_id="c1", body="hi"))
    actions = s.on_event(stored(ALICE, "c1", mid=9))
    assert [type(a.frame) for a in actions] == [AckFrame, MessageFrame]
    ack = actions[0].frame
    assert (ack.client_msg_id, ack.message_id, ack.duplicate) == ("c1", 9, False)
    assert s.pending == frozenset()


def test_a_resend_is_acked_to_its_sender_only_and_shown_to_nobody() -> None:
    sender, other_device, bob = session(ALICE), session(ALICE), session(BOB)
    sender.receive_text(frame(type="send", client_msg_id="c1", body="hi"))
    event = stored(ALICE, "c1", mid=9, dup=True).model_copy(update={"resend": True})
    [ack] = [a.frame for a in sender.on_event(event)]
    assert ack == AckFrame(client_msg_id="c1", message_id=9, created_at=event.message.created_at, duplicate=True)
    assert sender.on_event(event) == []  # answered once
    assert other_device.on_event(event) == [] and bob.on_event(event) == []


def test_a_send_unanswered_past_the_timeout_gets_unavailable_once() -> None:
    clock = FakeClock()
    s = session(ALICE, clock, send_timeout=8.0)
    s.receive_text(frame(type="send", client_msg_id="c1", body="hi"))
    clock.advance(5)
    s.receive_text(frame(type="send", client_msg_id="c2", body="hi"))
    clock.advance(3)
    error = only_error(s.expire_pending())
    assert (error.code, error.retryable, error.client_msg_id) == (ErrorCode.UNAVAILABLE, True, "c1")
    assert s.pending == frozenset({"c2"})
    assert s.expire_pending() == []
    # A late ack of the expired send is not passed on; its message still is.
    assert [type(a.frame) for a in s.on_event(stored(ALICE, "c1"))] == [MessageFrame]
    assert session(ALICE).expire_pending() == []  # no timeout configured: never


def test_duplicate_acks_the_sender_once_and_is_fanned_out_again() -> None:
    # The redelivered copy may be the only one anyone gets live (a worker died between COMMIT
    # and publish), so it goes to everyone who may see it; clients dedupe by message id.
    sender, other_device, bob = session(ALICE), session(ALICE), session(BOB)
    sender.receive_text(frame(type="send", client_msg_id="c1", body="hi"))
    event = stored(ALICE, "c1", mid=9, dup=True)
    ack, msg = [a.frame for a in sender.on_event(event)]
    assert ack == AckFrame(client_msg_id="c1", message_id=9, created_at=event.message.created_at, duplicate=True)
    assert isinstance(msg, MessageFrame) and msg.message.id == 9
    assert [a.frame for a in sender.on_event(event)] == [msg]  # acked once only
    for viewer in (other_device, bob):
        [again] = [a.frame for a in viewer.on_event(event)]
        assert again == msg


def test_public_message_reaches_everyone_without_ack() -> None:
    for viewer in (BOB, CAROL, ALICE):
        [msg] = [a.frame for a in session(viewer).on_event(stored(ALICE, "c1"))]
        assert isinstance(msg, MessageFrame)


def test_private_message_reaches_only_its_two_people() -> None:
    event = stored(ALICE, "c1", recipient=BOB.id)
    assert [type(a.frame) for a in session(BOB).on_event(event)] == [MessageFrame]
    assert [type(a.frame) for a in session(ALICE).on_event(event)] == [MessageFrame]
    assert session(CAROL).on_event(event) == []


def test_rejection_reaches_the_sending_connection_with_a_stable_code() -> None:
    s, other = session(ALICE), session(ALICE)
    s.receive_text(frame(type="send", client_msg_id="c1", recipient_id=99, body="hi"))
    event = MessageRejected(sender_id=1, client_msg_id="c1", code="recipient_unknown", reason="no user 99")
    error = only_error(s.on_event(event))
    assert error.code == ErrorCode.RECIPIENT_UNKNOWN and error.client_msg_id == "c1"
    assert other.on_event(event) == []
    assert s.on_event(event) == []  # already answered


def test_unknown_upstream_code_does_not_leak() -> None:
    s = session(ALICE)
    s.receive_text(frame(type="send", client_msg_id="c1", body="hi"))
    event = MessageRejected(sender_id=1, client_msg_id="c1", code="weird_internal", reason="x")
    assert only_error(s.on_event(event)).code == ErrorCode.INTERNAL


def test_publish_failure_is_unavailable_and_never_acked() -> None:
    s = session(ALICE)
    s.receive_text(frame(type="send", client_msg_id="c1", body="hi"))
    error = only_error(s.publish_failed("c1"))
    assert error.code == ErrorCode.UNAVAILABLE and error.retryable and error.client_msg_id == "c1"
    assert s.pending == frozenset()


def test_revocation_closes_only_that_session() -> None:
    s = session(ALICE)
    assert s.on_event(SessionRevoked(user_id=1, session_id="other")) == []
    assert s.on_event(SessionRevoked(user_id=1, session_id="sess-1")) == [Close(4401, "session revoked")]


def test_pending_sends_are_bounded() -> None:
    s = session(ALICE, max_pending=2)
    for cid in ("a", "b", "c"):
        s.receive_text(frame(type="send", client_msg_id=cid, body="hi"))
    assert s.pending == {"b", "c"}


# --- store outages --------------------------------------------------------------------------


def store_status(available: bool) -> StoreStatus:
    return StoreStatus(available=available, reason="test", sent_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_sends_are_refused_while_the_store_is_unavailable_then_accepted_again() -> None:
    clock = FakeClock()
    store = StoreAvailability(clock)
    alice, bob = session(ALICE, clock, store=store), session(BOB, clock, store=store)
    alice.receive_text(frame(type="send", client_msg_id="before", body="hi"))

    store.update(store_status(False))
    for s, cid in ((alice, "c1"), (bob, "c2")):  # one state for every connection of the gateway
        error = only_error(s.receive_text(frame(type="send", client_msg_id=cid, body="hi")))
        assert (error.code, error.retryable, error.client_msg_id) == (ErrorCode.UNAVAILABLE, True, cid)
        assert error.message == "messages cannot be stored right now; try again shortly"
    # A resend of a send published before the outage is refused too, but stays pending: its
    # first copy is on the bus and is acked once the worker stores it.
    only_error(alice.receive_text(frame(type="send", client_msg_id="before", body="hi")))
    assert alice.pending == {"before"} and bob.pending == frozenset()
    assert [type(a.frame) for a in alice.on_event(stored(ALICE, "before"))] == [AckFrame, MessageFrame]

    store.update(store_status(True))
    [publish] = alice.receive_text(frame(type="send", client_msg_id="c1", body="hi"))
    assert isinstance(publish, Publish) and publish.client_msg_id == "c1"
    assert alice.pending == {"c1"}


def test_a_bad_send_gets_its_own_error_during_an_outage() -> None:
    store = StoreAvailability(FakeClock())
    store.update(store_status(False))
    error = only_error(session(ALICE, store=store).receive_text(frame(type="send", client_msg_id="c1", body=" ")))
    assert error.code == ErrorCode.BODY_EMPTY and not error.retryable


def test_queries_and_pings_still_work_during_an_outage() -> None:
    store = StoreAvailability(FakeClock())
    store.update(store_status(False))
    s = session(ALICE, store=store)
    assert s.receive_text(frame(type="ping", request_id="p")) == [Send(PongFrame(request_id="p"))]
    [query] = s.receive_text(frame(type="sync", request_id="s"))
    assert isinstance(query, Query)


def test_after_a_refused_send_later_ones_wait_until_it_is_sent_again() -> None:
    # Per-connection order: c2 must not be stored before c1, which the broker did not take.
    s = session(ALICE)
    s.receive_text(frame(type="send", client_msg_id="c1", body="one"))
    s.publish_failed("c1")
    error = only_error(s.receive_text(frame(type="send", client_msg_id="c2", body="two")))
    assert (error.code, error.retryable, error.client_msg_id) == (ErrorCode.UNAVAILABLE, True, "c2")
    [publish] = s.receive_text(frame(type="send", client_msg_id="c1", body="one"))
    assert isinstance(publish, Publish) and publish.client_msg_id == "c1"
    [publish] = s.receive_text(frame(type="send", client_msg_id="c2", body="two"))
    assert isinstance(publish, Publish) and publish.client_msg_id == "c2"


@pytest.mark.parametrize("shown", ["live", "sync page"])
def test_a_refused_send_stored_after_all_stops_holding_up_later_ones(shown: str) -> None:
    # c1's first copy was published and stored; its resend's publish failed as the broker link
    # dropped. The client settles c1 from the stored copy it is shown (live, or in the sync
    # that follows a resync) and never sends c1 again: c2 must then be taken, not refused for
    # ever as "an earlier send was refused".
    s = session(ALICE)
    s.receive_text(frame(type="send", client_msg_id="c1", body="one"))
    s.publish_failed("c1")
    if shown == "live":
        s.on_event(stored(ALICE, "c1"))
    else:
        [query] = s.receive_text(frame(type="sync", request_id="s1", after_id=0))
        assert isinstance(query, Query)
        s.query_replied(query, MessagePage(messages=[stored(ALICE, "c1").message], has_more=False))
    [publish] = s.receive_text(frame(type="send", client_msg_id="c2", body="two"))
    assert isinstance(publish, Publish) and publish.client_msg_id == "c2"


def test_someone_elses_message_with_the_same_client_id_does_not_release_the_hold() -> None:
    s = session(ALICE)
    s.receive_text(frame(type="send", client_msg_id="c1", body="one"))
    s.publish_failed("c1")
    s.on_event(stored(BOB, "c1"))
    error = only_error(s.receive_text(frame(type="send", client_msg_id="c2", body="two")))
    assert (error.code, error.client_msg_id) == (ErrorCode.UNAVAILABLE, "c2")


def test_an_idle_session_is_small_and_its_tables_come_with_the_first_send() -> None:
    # A gateway holds one session per connection, most of them idle: no instance dict, and no
    # table of pending sends or commands until there is something to keep in it.
    clock = FakeClock()
    s = session(clock=clock, send_timeout=5.0)
    assert not hasattr(s, "__dict__")
    assert not hasattr(s._bucket, "__dict__")
    assert s.pending == frozenset() and s.expire_pending() == []
    assert s.on_event(stored(ALICE, "c1")) == [Send(MessageFrame(message=stored(ALICE, "c1").message))]
    assert isinstance(s.receive_text(frame(type="send", client_msg_id="c1", body="hi"))[0], Publish)
    assert s.pending == {"c1"}
    clock.advance(6)
    assert only_error(s.expire_pending()).client_msg_id == "c1"
    assert s.pending == frozenset()
    # The next session starts empty again: nothing leaked into a shared table.
    assert session().pending == frozenset()


def test_sessions_with_equal_limits_share_one_limits_object() -> None:
    a = ConnectionSession(ALICE, "s-a", LIMITS.model_copy(), FakeClock())
    b = ConnectionSession(BOB, "s-b", LIMITS.model_copy(), FakeClock())
    assert a.limits is b.limits and a.limits == LIMITS
    tighter = LIMITS.model_copy(update={"rate_burst": 1})
    c = ConnectionSession(CAROL, "s-c", tighter, FakeClock())
    assert c.limits == tighter and a.limits == LIMITS  # different limits are kept apart
    hello = c.start([])[0].frame
    assert isinstance(hello, HelloFrame) and hello.limits == tighter
