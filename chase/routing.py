"""Routing keys and bindings: the one place that knows how events are addressed on the bus.

Queue names here are relative: a bus adapter prefixes them with its namespace (``chase`` by
default, so ``persistence.submitted`` is the RabbitMQ queue ``chase.persistence.submitted``)
and names its exchange ``<namespace>.events``. Tests use a namespace of their own.

See the table in :mod:`chase.bus.port`.
"""

from __future__ import annotations

MESSAGE_SUBMITTED = "message.submitted"
MESSAGE_STORED_PUBLIC = "message.stored.public"
HISTORY_RPC = "rpc.history"
#: The persistence worker's word on whether the database takes messages (``StoreStatus``).
STORE_STATUS = "store.status"

#: The persistence worker's input: durable, one active consumer (commit order = id order).
PERSISTENCE_QUEUE = "persistence.submitted"
HISTORY_QUEUE = "persistence.history"


def message_stored(sender_id: int, recipient_id: int | None) -> str:
    """Routing key for a stored message: public, or the private conversation of two users."""
    if recipient_id is None:
        return MESSAGE_STORED_PUBLIC
    low, high = sorted((sender_id, recipient_id))
    return f"message.stored.dm.{low}.{high}"


def message_resent(sender_id: int) -> str:
    """Routing key of the answer to a resend: only gateways holding the sender hear it."""
    return f"user.{sender_id}.message.resent"


def message_rejected(sender_id: int) -> str:
    return f"message.rejected.{sender_id}"


def session_revoked(user_id: int) -> str:
    return f"user.{user_id}.session.revoked"


def presence(gateway_id: str) -> str:
    return f"presence.{gateway_id}"


def user_bindings(user_id: int) -> tuple[str, ...]:
    """What a gateway binds while ``user_id`` has a connection on it: **one** pattern.

    Every user-addressed key carries the user's id as a whole word (``message.stored.dm.<a>.<b>``,
    ``message.rejected.<u>``, ``user.<u>.…``), so ``#.<u>.#`` reaches all of them and a
    connect costs one broker round trip instead of four. A key made for something else must
    therefore not carry a bare number as a word (name such ids ``r<id>``, say): it would reach
    the gateways holding the user with that id, which is harmless (the fan-out and the session
    check who may see what) but costs a delivery.
    """
    return (f"#.{user_id}.#",)


#: What every gateway's fan-out queue is bound to, whoever is connected.
GATEWAY_STATIC_BINDINGS = (MESSAGE_STORED_PUBLIC, "presence.#", STORE_STATUS)


def gateway_queue(gateway_id: str) -> str:
    return f"gateway.{gateway_id}"
