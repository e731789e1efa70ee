"""The command-line client's pure parts: how a message is printed, and option parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chase.schemas import ChatMessage, UserRef
from client.cli import build_parser, format_message
from client.core.endpoints import Endpoints

ALICE = UserRef(id=1, username="alice")
BOB = UserRef(id=2, username="bob")
NAMES = {1: "alice", 2: "bob"}.__getitem__


def message(sender: UserRef, to: int | None, body: str) -> ChatMessage:
    return ChatMessage(id=1, sender=sender, recipient_id=to, body=body,
                       created_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC), client_msg_id="c1")


def test_lines_say_who_to_whom_with_the_local_time() -> None:
    local = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).astimezone().strftime("%H:%M:%S")
    assert format_message(message(BOB, None, "hi"), ALICE.id, NAMES) == f"{local}  bob -> room: hi"
    assert format_message(message(BOB, ALICE.id, "psst"), ALICE.id, NAMES) == f"{local}  bob -> you: psst"
    assert format_message(message(ALICE, BOB.id, "yes"), ALICE.id, NAMES) == f"{local}  alice -> bob: yes"
    two_lines = format_message(message(BOB, None, "one\ntwo"), ALICE.id, NAMES)
    assert two_lines.splitlines()[1] == " " * 10 + "two"


def test_the_password_is_never_an_option() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["say", "--password", "secret", "hi"])


def test_a_local_server_trusts_the_dev_ca_and_the_gateway_follows_the_host() -> None:
    local = Endpoints.resolve("https://127.0.0.1:8443")
    assert (local.gateway_url, str(local.ca_path)) == ("wss://127.0.0.1:8765", "certs/ca.pem")
    remote = Endpoints.resolve("chat.example.org")
    assert (remote.auth_url, remote.gateway_url, remote.ca_path) == (
        "https://chat.example.org", "wss://chat.example.org:8765", None)
    with pytest.raises(ValueError):
        Endpoints.resolve("http://127.0.0.1:8443")  # never in clear text
