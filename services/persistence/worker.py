"""The persistence worker: submitted messages in, committed messages (or rejections) out.

Persist, then fan out: a batch is stored in one transaction and only after its COMMIT are the
results published, so every message a recipient sees is already in history. The base class
acks the batch's deliveries only when :meth:`PersistenceWorker.consume_batch` returns; if a
publish is not confirmed it raises, the batch comes back, and storing it again only finds
duplicates, so nothing is stored twice and nothing acknowledged is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.exc import DBAPIError, OperationalError

from chase import routing
from chase.bus.consumer import BatchConsumer
from chase.bus.port import Bus, BusUnavailable, QueueSpec
from chase.logging import get_logger
from chase.schemas import Event, MessageRejected, MessageStored, MessageSubmitted
from services.persistence.store import Rejected, Stored, StoreResult

log = get_logger(__name__)

#: Durable, and one active consumer at a time: commit order equals id order, so id cursors
#: have no gaps. A second worker waits as a hot standby.
PERSISTENCE_QUEUE_SPEC = QueueSpec(
    routing.PERSISTENCE_QUEUE,
    bindings=(routing.MESSAGE_SUBMITTED,),
    durable=True,
    single_active_consumer=True,
)


class BatchStore(Protocol):
    async def store_batch(self, submitted: Sequence[MessageSubmitted]) -> list[StoreResult]: ...


def outgoing(result: StoreResult) -> tuple[str, Event]:
    """The routing key and event that announce one store result."""
    if isinstance(result, Stored):
        message = result.message
        key = routing.message_stored(message.sender.id, message.recipient_id)
        return key, MessageStored(message=message, duplicate=result.duplicate)
    assert isinstance(result, Rejected)
    return routing.message_rejected(result.sender_id), MessageRejected(
        sender_id=result.sender_id, client_msg_id=result.client_msg_id, code=result.code, reason=result.reason
    )


#: MySQL/MariaDB errors that say nothing about the statement: too many connections, lock wait
#: timeout, deadlock, cannot connect, server gone, connection lost.
_MYSQL_TRANSIENT = frozenset({1040, 1205, 1213, 2002, 2003, 2006, 2013})


def _database_down(exc: Exception) -> bool:
    # Narrow on purpose: a statement the database refuses (a bad value, say) must fail the
    # batch, be isolated and dead-lettered, not be retried forever ahead of everything else.
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_TRANSIENT
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig)  # SQLite: busy


class PersistenceWorker(BatchConsumer):
    """Consumes ``message.submitted``; call ``start()`` once the bus is started, ``stop()`` to end."""

    def __init__(
        self,
        bus: Bus,
        store: BatchStore,
        *,
        max_batch: int = 200,
        max_wait: float = 0.02,
        max_attempts: int = 5,
        retry_delay: float = 0.05,
    ) -> None:
        super().__init__(
            bus,
            PERSISTENCE_QUEUE_SPEC,
            max_batch=max_batch,
            max_wait=max_wait,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
        )
        self._store = store

    def is_transient(self, exc: Exception) -> bool:
        """Database or broker down: retry until it is back, never dead-letter for it."""
        return isinstance(exc, BusUnavailable | ConnectionError) or _database_down(exc)

    async def consume_batch(self, events: list[Event]) -> None:
        """Store the batch, then publish every result; raising sends the whole batch back."""
        submitted: list[MessageSubmitted] = []
        for event in events:
            if isinstance(event, MessageSubmitted):
                submitted.append(event)
            else:
                # Only a misrouted binding puts anything else here; retrying would not help.
                log.warning("persistence_skipped_event", event_type=event.type)
        if not submitted:
            return
        results = await self._store.store_batch(submitted)
        # One at a time, in id order: each recipient's gateway then sees messages in the order
        # they were committed. Each publish waits for the broker's confirm.
        for result in results:
            routing_key, event = outgoing(result)
            await self.bus.publish(routing_key, event)
        rejected = sum(isinstance(r, Rejected) for r in results)
        log.debug("persistence_batch_done", size=len(results), rejected=rejected)
