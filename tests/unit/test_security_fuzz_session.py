"""A Hypothesis fuzzer of the gateway's frame handling (the sans-I/O session): random text and
bytes, random JSON, and valid frames mutated field by field. Whatever arrives, the session
never raises, never answers ``internal``, and answers with a documented error, a page query,
a publish, a pong or a documented close."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chase.clock import FakeClock
from chase.schemas import MAX_ID, ErrorFrame, Limits, PongFrame, UserRef
from services.gateway.errors import CloseCode, ErrorCode
from services.gateway.session import Close, ConnectionSession, Publish, Query, Send

LIMITS = Limits(max_body_chars=4000, max_frame_bytes=65536, rate_per_second=20.0, rate_burst=40)
DOCUMENTED = {code.value for code in ErrorCode} - {"internal"}
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

VALID = [
    {"type": "send", "client_msg_id": "c1", "recipient_id": None, "body": "hi"},
    {"type": "send", "client_msg_id": "c2", "recipient_id": 2, "body": "psst"},
    {"type": "history", "request_id": "h", "with_user_id": 2, "before_id": 10, "limit": 50},
    {"type": "sync", "request_id": "s", "after_id": 0, "limit": 200},
    {"type": "ping", "request_id": "p"},
]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=50), st.floats(allow_nan=False),
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([MAX_ID, MAX_ID + 1, 0, -1, 2**64]),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)), max_leaves=20)


@st.composite
def mutated_frames(draw: st.DrawFn) -> str:
    frame = dict(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["drop", "add", "retype", "nest"]))
        key = draw(st.sampled_from(sorted(frame) or ["type"]))
        if action == "drop":
            frame.pop(key, None)
        elif action == "add":
            frame[draw(st.sampled_from(["sender", "sender_id", "admin", "x", "type"]))] = draw(json_values)
        elif action == "retype":
            frame[key] = draw(json_values)
        else:
            depth = draw(st.integers(1, 400))
            frame[key] = json.loads("[" * depth + "]" * depth) if depth < 900 else []
    return json.dumps(frame)


raw_inputs = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    json_values.map(json.dumps),
    mutated_frames(),
    st.integers(1, 2000).map(lambda depth: "[" * depth + "]" * depth),
    st.sampled_from(['{"type":"send","client_msg_id":"c","body":"\\ud800"}', '{"type":"ping","request_id":"\\udfff"}',
                     "\ufeff{}", '{"type":"send"' + ',"a":1' * 5000 + "}"]),
)


def session() -> ConnectionSession:
    return ConnectionSession(UserRef(id=1, username="alice"), "s-1", LIMITS, FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))


def check(actions: list) -> None:  # noqa: ANN001
    assert isinstance(actions, list) and actions
    for action in actions:
        if isinstance(action, Send):
            frame = action.frame
            if isinstance(frame, ErrorFrame):
                assert frame.code in DOCUMENTED, frame
                assert len(frame.message) <= 200
            else:
                assert isinstance(frame, PongFrame), frame
        elif isinstance(action, Publish):
            assert action.event.sender.id == 1  # whatever the frame said
            assert action.event.recipient_id is None or 1 <= action.event.recipient_id <= MAX_ID
        elif isinstance(action, Query):
            assert action.request.viewer_id == 1
        else:
            assert isinstance(action, Close) and action.code in {c.value for c in CloseCode}, action


@FUZZ
@given(data=raw_inputs)
def test_any_single_frame_gets_a_documented_answer(data: str | bytes) -> None:
    check(session().receive_text(data))


@FUZZ
@given(frames=st.lists(raw_inputs, min_size=1, max_size=60))
def test_any_sequence_of_frames_gets_documented_answers(frames: list[str | bytes]) -> None:
    conn = session()
    for data in frames:
        actions = conn.receive_text(data)
        check(actions)
        if any(isinstance(a, Close) for a in actions):
            break
