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
#: Membership changes of group rooms: gateway -> persistence worker, on its queue, so they are
#: stored in order with messages by the one writer.
ROOM_COMMAND = "room.command"
#: The persistence worker's word on whether the database takes messages (``StoreStatus``).
STORE_STATUS = "store.status"

#: The persistence worker's input: durable, one active consumer (commit order = id order).
PERSISTENCE_QUEUE = "persistence.submitted"
HISTORY_QUEUE = "persistence.history"


def message_stored(sender_id: int, recipient_id: int | None, room_id: int | None = None) -> str:
    """Routing key for a stored message: public, a private conversation of two users, or a
    group room."""
    if room_id is not None:
        return f"message.stored.room.r{room_id}"
    if recipient_id is None:
        return MESSAGE_STORED_PUBLIC
    low, high = sorted((sender_id, recipient_id))
    return f"message.stored.dm.{low}.{high}"


def room_event(room_id: int, user_id: int) -> str:
    """Routing key of a room's membership event concerning ``user_id``: it reaches gateways
    bound to the room (``room_binding``) and gateways holding that user (``user_bindings``),
    each once, whether or not the user is a member yet (or still)."""
    return f"message.stored.room.r{room_id}.member.{user_id}"


def room_binding(room_id: int) -> str:
    """What a gateway binds while it holds at least one member of the room: the room's
    messages and its membership events. One route per room per gateway, whatever the number
    of members connected there."""
    return f"message.stored.room.r{room_id}.#"


def room_result(actor_id: int) -> str:
    """Routing key of a ``RoomCommandResult``: gateways holding the actor."""
    return f"user.{actor_id}.room.result"


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
