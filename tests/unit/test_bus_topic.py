"""Topic matching must agree with a RabbitMQ topic exchange word for word."""

from __future__ import annotations

import pytest

from chase.bus.topic import matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("message.submitted", "message.submitted", True),
        ("message.submitted", "message.submitted.x", False),
        ("message.submitted", "message", False),
        ("message.*", "message.submitted", True),
        ("message.*", "message", False),
        ("message.*", "message.stored.public", False),
        ("*", "a", True),
        ("*", "", False),
        ("*", "a.b", False),
        ("#", "", True),
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("message.#", "message", True),
        ("message.#", "message.stored.dm.1.2", True),
        ("message.#", "messages.stored", False),
        ("#.revoked", "user.7.session.revoked", True),
        ("#.revoked", "revoked", True),
        ("#.revoked", "user.7.session", False),
        ("user.7.#", "user.7.session.revoked", True),
        ("user.7.#", "user.17.session.revoked", False),
        ("user.*.session.#", "user.3.session", True),
        ("message.stored.dm.1.*", "message.stored.dm.1.2", True),
        ("message.stored.dm.*.2", "message.stored.dm.1.2", True),
        ("message.stored.dm.*.2", "message.stored.dm.2.1", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.x.y.c", False),
        ("a.#.#.b", "a.b", True),
        ("#.a.#", "x.a.y", True),
        ("#.a.#", "x.b.y", False),
        ("*.#", "", False),
        ("*.#", "a", True),
        ("#.*", "a.b", True),
        ("a.*.*", "a.b", False),
        ("a..b", "a..b", True),
        ("a.*.b", "a..b", True),
        ("", "", True),
        ("", "a", False),
        ("presence.#", "presence.gw-1", True),
    ],
)
def test_matches(pattern: str, key: str, expected: bool) -> None:
    assert matches(pattern, key) is expected


def test_star_is_not_a_substring_wildcard() -> None:
    assert not matches("mess*.stored", "message.stored")
    assert not matches("message.stored.dm.1*", "message.stored.dm.12")


def test_long_hash_patterns_stay_fast() -> None:
    key = ".".join(["w"] * 40)
    assert not matches("#.#.#.#.#.x", key)
    assert matches("#.#.#.#.#.w", key)
