"""When the notification sound plays: a pure decision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chase.schemas import ChatMessage, UserRef
from client.core.conversations import PUBLIC
from client.core.notify import Attention, should_notify

ME = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")


def message(sender: UserRef, to: int | None) -> ChatMessage:
    return ChatMessage(id=1, sender=sender, recipient_id=to, body="x",
                       created_at=datetime(2026, 1, 1, tzinfo=UTC), client_msg_id="c1")


@pytest.mark.parametrize(
    ("sender", "to", "viewing", "active", "muted", "expected"),
    [
        (BOB, None, PUBLIC, True, False, False),    # looking right at it
        (BOB, None, BOB.id, True, False, True),     # room message while in a private chat
        (BOB, ME.id, PUBLIC, True, False, True),    # private message while in the room
        (BOB, ME.id, BOB.id, True, False, False),   # private chat open
        (BOB, ME.id, BOB.id, False, False, True),   # open, but the window is not active
        (BOB, ME.id, PUBLIC, False, True, False),   # muted
        (ME, None, BOB.id, False, False, False),    # one's own message never chimes
    ],
)
def test_sound_only_for_messages_out_of_sight(sender: UserRef, to: int | None, viewing: int | None,
                                              active: bool, muted: bool, expected: bool) -> None:
    attention = Attention(viewing=viewing, window_active=active, muted=muted)
    assert should_notify(message(sender, to), ME.id, attention) is expected
