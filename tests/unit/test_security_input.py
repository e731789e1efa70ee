"""Hostile input, one rule at a time: every refusal is documented and none is ``internal``.

The gateway's sans-I/O session (frames) and the auth models (HTTP bodies); the same inputs
over real sockets are in ``tests/integration/test_security_input.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from chase import passwords
from chase.clock import FakeClock
from chase.schemas import MAX_ID, ErrorFrame, Limits, UserRef
from chase.text import has_lone_surrogate, is_blank
from services.auth.models import LoginRequest, UserCreate
from services.gateway.session import ConnectionSession, Publish, Send

LIMITS = Limits(max_body_chars=4000, max_frame_bytes=65536, rate_per_second=1000.0, rate_burst=1000)


def session() -> ConnectionSession:
    return ConnectionSession(UserRef(id=1, username="alice"), "s-1", LIMITS, FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))


def only_error(actions: list) -> ErrorFrame:  # noqa: ANN001
    assert len(actions) == 1 and isinstance(actions[0], Send), actions
    frame = actions[0].frame
    assert isinstance(frame, ErrorFrame), frame
    return frame


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "send", "client_msg_id": "c1", "recipient_id": MAX_ID + 1, "body": "hi"},
        {"type": "send", "client_msg_id": "c1", "recipient_id": 2**64, "body": "hi"},
        {"type": "history", "with_user_id": MAX_ID + 1},
        {"type": "history", "before_id": MAX_ID + 1},
        {"type": "sync", "after_id": MAX_ID + 1},
        {"type": "sync", "after_id": -1},
        {"type": "history", "limit": 10**30},
    ],
)
def test_ids_out_of_64_bit_range_are_invalid_frames(frame: dict) -> None:
    error = only_error(session().receive_text(json.dumps(frame)))
    assert error.code == "invalid_frame"
    assert "less than or equal" in error.message or "greater than or equal" in error.message


def test_the_largest_id_is_accepted() -> None:
    actions = session().receive_text(json.dumps({"type": "send", "client_msg_id": "c1", "recipient_id": MAX_ID,
                                                 "body": "hi"}))
    assert isinstance(actions[0], Publish)


@pytest.mark.parametrize("depth", [201, 1000, 100_000 // 2])
def test_deeply_nested_json_is_an_invalid_frame_not_a_crash(depth: int) -> None:
    text = '{"type":"send","client_msg_id":"c1","body":' + "[" * depth + "]" * depth + "}"
    error = only_error(session().receive_text(text[:65536]))
    assert error.code == "invalid_frame"
    assert error.message.startswith("malformed JSON")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\ud800\\u0041"])
def test_lone_surrogates_in_a_frame_are_invalid(escape: str) -> None:
    text = '{"type":"send","client_msg_id":"c1","body":"a' + escape + '"}'
    error = only_error(session().receive_text(text))
    assert error.code == "invalid_frame"
    assert error.client_msg_id == "c1"


@pytest.mark.parametrize("body", ["\u200b", "\u200b\u200c\u200d\ufeff", " \t\n\u00a0\u3000", "\u2800\u3164", "\u202e"])
def test_bodies_with_nothing_visible_are_refused_as_empty(body: str) -> None:
    actions = session().receive_text(json.dumps({"type": "send", "client_msg_id": "c1", "body": body}))
    error = only_error(actions)
    assert (error.code, error.client_msg_id) == ("body_empty", "c1")


@pytest.mark.parametrize("body", ["a\u200b", "👍", "\u0301", ".", "שלום"])
def test_bodies_with_something_visible_pass(body: str) -> None:
    assert not is_blank(body)
    actions = session().receive_text(json.dumps({"type": "send", "client_msg_id": "c1", "body": body}))
    assert isinstance(actions[0], Publish)


@pytest.mark.parametrize("name", ["...", "-x1", "x1-", "_ab", "a..b", "a-_b", "ab.", ".ab", "a b", "ab\u200b"])
def test_usernames_that_read_as_punctuation_or_options_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="starts and ends with a letter or digit"):
        UserCreate(username=name, password="a fine passphrase")


@pytest.mark.parametrize("name", ["abc", "a.b", "Alice_Smith.2-x", "x" * 32, "1-2-3"])
def test_usernames_of_letters_and_digits_joined_by_single_marks_pass(name: str) -> None:
    assert UserCreate(username=name, password="a fine passphrase").username == name


@pytest.mark.parametrize("field", ["username", "password"])
def test_lone_surrogates_in_credentials_are_validation_errors(field: str) -> None:
    values = {"username": "alice", "password": "a fine passphrase"}
    values[field] = values[field] + "\ud800"
    assert has_lone_surrogate(values[field])
    with pytest.raises(ValidationError, match="unicode"):
        LoginRequest(**values)
    with pytest.raises(ValidationError):
        UserCreate(**values)


@pytest.mark.parametrize("password", ["password", "PASSWORD", "12345678", "iloveyou", "passw0rd", "qwertyuiop"])
def test_common_passwords_are_refused(password: str) -> None:
    assert passwords.problem(password).code == "too_common"
    with pytest.raises(ValidationError, match="most common"):
        UserCreate(username="alice", password=password)


def test_the_password_rule() -> None:
    assert passwords.problem("1234567").code == "too_short"
    assert passwords.problem("é" * 129).code == "too_long"
    assert passwords.problem("é" * 128) is None
    assert passwords.problem("Alice.Smith", "alice.smith").code == "same_as_username"
    assert passwords.problem("correct horse battery staple") is None
    assert len(passwords.common_passwords()) == 10_000
    assert all(len(p) >= passwords.MIN_CHARS for p in passwords.common_passwords())


async def test_the_client_core_applies_the_same_password_rule_before_sending() -> None:
    import ssl

    from client.core.api import AuthApi
    from client.core.errors import InvalidInput

    # Nothing listens there: the rule refuses the password before any connection is made.
    api = AuthApi("https://127.0.0.1:9", ssl.create_default_context())
    try:
        with pytest.raises(InvalidInput, match="most common"):
            await api.register("alice", "password")
    finally:
        await api.aclose()
