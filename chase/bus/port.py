"""The bus port, with its routing model (the same as a RabbitMQ topic exchange).

Routing: every event is published to one topic exchange with a routing key of dot-separated
words. A queue receives an event when one of its bindings matches the key, ``*`` standing for
exactly one word and ``#`` for zero or more; a queue gets at most one copy of an event however
many of its bindings match.

Routing keys used by ChaSe (see ``chase.routing``)::

    message.submitted                     gateway -> persistence worker
    message.stored.public                 worker -> every gateway
    message.stored.dm.<low>.<high>        worker -> gateways holding either participant
    message.rejected.<sender_id>          worker -> gateways holding the sender
    user.<id>.session.revoked             auth -> gateways holding that user
    presence.<gateway_id>                 gateway -> every gateway (changes and heartbeats)
    store.status                          worker -> every gateway (database reachable or not)
    rpc.history                           gateway -> worker (request/reply)
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from chase.schemas import Event


class BusUnavailable(Exception):
    """The broker is unreachable or did not confirm a publish: the event may not be stored."""


class RequestTimeout(Exception):
    """No reply arrived in time to a :meth:`Bus.request`."""


@dataclass(frozen=True)
class QueueSpec:
    """A queue, its bindings and its durability.

    ``name`` is relative to the bus namespace (see :mod:`chase.routing`).

    ``durable`` queues survive a broker restart (RabbitMQ: quorum queues) and must be used
    for anything whose loss would lose a message. ``exclusive`` queues belong to the
    connection that declared them and vanish with it (a gateway's fan-out queue).
    ``single_active_consumer``: of all consumers only one gets deliveries; the others wait as
    hot standbys and take over when it goes (the persistence worker's ordering guarantee).
    """

    name: str
    bindings: tuple[str, ...] = ()
    durable: bool = True
    exclusive: bool = False
    single_active_consumer: bool = False
    #: Bounded length for queues that may be dropped from (a gateway's fan-out); None: unbounded.
    max_length: int | None = None
    #: The same bound in bytes of event bodies (one event may carry a run of a batch).
    max_length_bytes: int | None = None
    #: Durable queues only: how many times an event may come back (rejected with requeue, or
    #: unacked when its consumer went away) before the broker dead-letters it (RabbitMQ's
    #: ``x-delivery-limit``). The count lives in the broker, so it survives consumer crashes.
    delivery_limit: int | None = None


class Delivery(abc.ABC):
    """One event taken from a queue. The handler must :meth:`ack` or :meth:`reject` it."""

    event: Event
    routing_key: str
    redelivered: bool
    #: How many earlier deliveries of this event failed (came back to the queue), as the
    #: broker counts them on queues with a ``delivery_limit``; 0 elsewhere.
    delivery_count: int = 0

    @property
    def stale(self) -> bool:
        """True when the channel this came on is gone: it can no longer be acked, and the
        broker has already put the event back for another delivery."""
        return False

    @abc.abstractmethod
    async def ack(self) -> None:
        """The event is fully handled (for the worker: its batch is committed)."""

    @abc.abstractmethod
    async def reject(self, *, requeue: bool) -> None:
        """Give the event back (``requeue=True``) or drop it (to the dead-letter queue if any)."""


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop consuming; unacknowledged deliveries go back to the queue."""


Handler = Callable[[Delivery], Awaitable[None]]
Responder = Callable[[Event], Awaitable[Event]]


class Bus(abc.ABC):
    """Publish, consume with acks, and request/reply over one topic exchange."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and declare the exchange; raises :class:`BusUnavailable` if it cannot."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Cancel consumers and disconnect. Idempotent."""

    def is_ready(self) -> bool:
        """True while started, not closed and connected (readiness probes ask this)."""
        return True

    @abc.abstractmethod
    async def publish(self, routing_key: str, event: Event) -> None:
        """Return once the broker has taken responsibility for ``event`` (publisher confirm).

        Raises :class:`BusUnavailable` when it cannot: the caller must not report success.
        An event no queue is bound for is silently dropped, as by a topic exchange.
        """

    async def publish_many(self, items: Sequence[tuple[str, Event]]) -> None:
        """Publish ``(routing_key, event)`` pairs in order; return once all are confirmed.

        Raises :class:`BusUnavailable` if any was not confirmed (the others may have been).
        This default awaits each confirm in turn; an adapter with a network round trip per
        confirm overrides it to await them together.
        """
        for routing_key, event in items:
            await self.publish(routing_key, event)

    async def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        """Ack ``deliveries``, given in the order they were received, all at once.

        The caller must have settled (acked or rejected) every delivery its subscription
        received before the last of these that is not among them, as a consumer that handles
        its deliveries in order, one batch at a time, has: an adapter may then ack them with
        one message to the broker (RabbitMQ: ``basic.ack`` with ``multiple``). This default
        acks each in turn.
        """
        for delivery in deliveries:
            await delivery.ack()

    @abc.abstractmethod
    async def consume(self, queue: QueueSpec, handler: Handler, *, prefetch: int = 100) -> Subscription:
        """Declare ``queue`` with its bindings and feed its events to ``handler``.

        At most ``prefetch`` deliveries are unacknowledged at once. An exception escaping
        ``handler`` rejects the delivery with requeue.
        """

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call ``callback`` each time the broker connection came back after a loss, once the
        queues of :meth:`consume` are declared, bound and consumed again.

        Events published while the connection was down never reached exclusive queues (they
        died with it): a consumer of one uses this to tell its own clients to catch up. The
        in-process bus never loses its connection, so it never calls back.
        """
        return None

    @abc.abstractmethod
    async def bind(self, queue_name: str, binding: str) -> None:
        """Add a binding to a declared queue (a gateway binding a user who just connected)."""

    @abc.abstractmethod
    async def unbind(self, queue_name: str, binding: str) -> None:
        """Remove a binding added with :meth:`bind`."""

    @abc.abstractmethod
    async def request(self, routing_key: str, event: Event, *, timeout: float = 5.0) -> Event:
        """Publish ``event`` and wait for the one reply of the responder serving that key.

        Raises :class:`RequestTimeout` after ``timeout`` seconds, :class:`BusUnavailable` when
        the broker is unreachable.
        """

    @abc.abstractmethod
    async def serve(self, queue: QueueSpec, responder: Responder, *, prefetch: int = 10) -> Subscription:
        """Answer requests arriving on ``queue``: each event's reply is ``await responder(event)``."""


