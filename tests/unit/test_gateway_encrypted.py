"""The gateway's rule for end-to-end encrypted sends (sans-I/O): ciphertext goes through
untouched with an empty body; plaintext beside it, the public room, oversize ciphertext and
malformed envelopes are refused."""

from __future__ import annotations

import json

import pytest

from chase.clock import FakeClock
from chase.schemas import MAX_CIPHERTEXT_CHARS, Limits, MessageSubmitted, UserRef, encrypted_problem
from services.gateway.errors import ErrorCode
from services.gateway.session import ConnectionSession, Publish

ALICE = UserRef(id=1, username="alice")
LIMITS = Limits(max_body_chars=10, max_frame_bytes=200_000, rate_per_second=100, rate_burst=100)


def envelope(body: str = "QUJD", devices: int = 1) -> dict:
    return {"algorithm": "chase.olm.v1", "sender_device": "dev1", "sender_key": "K" * 43,
            "recipients": [{"device_id": f"d{n}", "type": 0, "body": body} for n in range(devices)],
            "backups": []}


def send(**fields: object) -> list:
    session = ConnectionSession(ALICE, "sess-1", LIMITS, FakeClock())
    return session.receive_text(json.dumps({"type": "send", "client_msg_id": "c1", **fields}))


def test_ciphertext_passes_through_with_an_empty_body() -> None:
    [action] = send(recipient_id=2, body="", ciphertext=envelope("A" * 40))
    assert isinstance(action, Publish) and isinstance(action.event, MessageSubmitted)
    assert action.event.body == "" and action.event.ciphertext is not None
    assert action.event.ciphertext.recipients[0].body == "A" * 40


@pytest.mark.parametrize(("fields", "words"), [
    ({"recipient_id": 2, "body": "the secret", "ciphertext": envelope()}, "no plaintext"),
    ({"recipient_id": None, "body": "", "ciphertext": envelope()}, "public room"),
    ({"recipient_id": 2, "body": "", "ciphertext": envelope("A" * 8000, devices=7)}, "limit"),
])
def test_refused_with_a_reason(fields: dict, words: str) -> None:
    [action] = send(**fields)
    assert action.frame.code == ErrorCode.ENCRYPTED_INVALID and words in action.frame.message


@pytest.mark.parametrize("bad", [
    {**envelope(), "extra": 1},
    {**envelope(), "recipients": [{"device_id": "d", "type": 2, "body": "QQ=="}]},
    {**envelope(), "recipients": [{"device_id": "d", "type": 1, "body": "not base64!"}]},
    {**envelope(), "sender_key": "short"},
])
def test_malformed_envelopes_are_invalid_frames(bad: dict) -> None:
    [action] = send(recipient_id=2, body="", ciphertext=bad)
    assert action.frame.code == ErrorCode.INVALID_FRAME


def test_the_same_rule_for_the_store() -> None:
    assert encrypted_problem("x", None, None) is None
    assert MAX_CIPHERTEXT_CHARS < 65_536  # fits the default frame limit
