"""Routing keys: a private message reaches exactly its two participants' bindings."""

from __future__ import annotations

from chase import routing
from chase.bus.topic import matches


def _reaches(user_id: int, key: str) -> bool:
    return any(matches(binding, key) for binding in routing.user_bindings(user_id))


def test_private_messages_reach_both_participants_and_nobody_else() -> None:
    key = routing.message_stored(sender_id=12, recipient_id=3)
    assert key == routing.message_stored(sender_id=3, recipient_id=12)
    assert _reaches(3, key) and _reaches(12, key)
    for other in (1, 2, 4, 13, 123, 31):
        assert not _reaches(other, key)


def test_public_messages_reach_every_gateway_not_user_bindings() -> None:
    key = routing.message_stored(sender_id=5, recipient_id=None)
    assert any(matches(b, key) for b in routing.GATEWAY_STATIC_BINDINGS)
    assert not _reaches(5, key)


def test_session_revocation_and_rejections_are_user_addressed() -> None:
    assert _reaches(7, routing.session_revoked(7)) and not _reaches(8, routing.session_revoked(7))
    assert _reaches(7, routing.message_rejected(7)) and not _reaches(70, routing.message_rejected(7))


def test_store_status_reaches_every_gateway_and_not_the_worker() -> None:
    assert any(matches(b, routing.STORE_STATUS) for b in routing.GATEWAY_STATIC_BINDINGS)
    assert not matches(routing.MESSAGE_SUBMITTED, routing.STORE_STATUS)
