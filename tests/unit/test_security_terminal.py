"""``chase cli`` shows other people's control characters, never obeys them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chase.schemas import ChatMessage, UserRef
from client.cli import format_message
from client.terminal import visible

ATTACKS = [
    "\x1b]0;pwned\x07",  # window title
    "\x1b]52;c;ZWNobyBoaQ==\x07",  # OSC 52: write the clipboard
    "fine\rbob -> room: forged line",  # carriage return over the real line
    "\x9b2J\x9d0;t\x9c",  # C1 CSI / OSC / ST
    "\x1b[2J\x1b[H",  # clear the screen
    "abc\u202egnp.exe",  # right-to-left override
    "\x00\x08\x7f",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_no_control_character_survives(text: str) -> None:
    shown = visible(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown), repr(shown)
    assert "\u202e" not in shown


def test_stand_ins_are_readable() -> None:
    assert visible("a\x1bb\rc\x9bd\u202ee\x7f") == "a␛b␍c<U+009B>d<U+202E>e␡"
    assert visible("one\ntwo") == "one␊two"
    assert visible("one\ntwo", keep_newlines=True) == "one\ntwo"
    assert visible("👩‍👩‍👧 e\u0301 שלום") == "👩‍👩‍👧 e\u0301 שלום"


def test_a_message_line_carries_no_control_character() -> None:
    message = ChatMessage(id=1, sender=UserRef(id=2, username="m\x1b[31mallory"), recipient_id=None,
                          body="hi\r\x1b]52;c;ZWNobyBoaQ==\x07\nsecond line", created_at=datetime(2026, 1, 1, tzinfo=UTC),
                          client_msg_id="c1")
    line = format_message(message, 1, lambda _id: "room")
    assert "\x1b" not in line and "\r" not in line and "\x07" not in line
    assert line.endswith("m␛[31mallory -> room: hi␍␛]52;c;ZWNobyBoaQ==␇\n" + " " * 10 + "second line")
