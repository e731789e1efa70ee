"""The one schema module: what crosses a socket or a queue, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from chase import schemas


def test_send_frame_round_trips() -> None:
    frame = schemas.SendFrame(client_msg_id="m-1", recipient_id=7, body="héllo 👋")
    assert schemas.decode_client_frame(schemas.encode(frame)) == frame


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"type": "nope"}',
        b'{"type": "send", "body": "x"}',  # no client_msg_id
        b'{"type": "send", "client_msg_id": "a", "body": "x", "sender_id": 3}',  # forging a sender
        b'{"type": "send", "client_msg_id": "a b", "body": "x"}',  # id with a space
        b'{"type": "send", "client_msg_id": "a", "recipient_id": 0, "body": "x"}',
        b'{"type": "history", "limit": 100000}',
        b'{"type": "send", "client_msg_id": "a", "recipient_id": "5", "body": "x"}',  # a string id
        b'{"type": "send", "client_msg_id": "a", "body": 5}',
        b'{"type": "history", "with_user_id": true}',
        b'{"type": "sync", "after_id": -1}',
        b"\xff\xfe",
    ],
)
def test_malformed_client_frames_are_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        schemas.decode_client_frame(raw)


def test_server_frames_and_events_are_discriminated_by_type() -> None:
    message = schemas.ChatMessage(
        id=1,
        sender=schemas.UserRef(id=1, username="alice"),
        recipient_id=None,
        body="hi",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        client_msg_id="c1",
    )
    frame = schemas.decode_server_frame(schemas.encode(schemas.MessageFrame(message=message)))
    assert isinstance(frame, schemas.MessageFrame) and frame.message == message
    event = schemas.decode_event(schemas.encode(schemas.MessageStored(message=message)))
    assert isinstance(event, schemas.MessageStored) and not event.duplicate


def test_a_client_frame_is_not_an_event() -> None:
    with pytest.raises(ValidationError):
        schemas.decode_event(schemas.encode(schemas.PingFrame()))


def test_store_status_is_an_event() -> None:
    status = schemas.StoreStatus(available=False, reason="cannot connect", sent_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert schemas.decode_event(schemas.encode(status)) == status
