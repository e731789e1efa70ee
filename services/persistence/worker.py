"""The persistence worker: submitted messages in, committed messages (or rejections) out.

Persist, then fan out: a batch is stored in one transaction and only after its COMMIT are the
results published, so every message a recipient sees is already in history. The base class
acks the batch's deliveries only when :meth:`PersistenceWorker.handle_batch` returns; if a
publish is not confirmed it raises, the batch comes back, and storing it again only finds
duplicates, so nothing is stored twice and nothing acknowledged is lost.

Store outages are announced, so gateways refuse new sends instead of leaving them unanswered:
when a batch fails because the database cannot be reached, the worker publishes
``StoreStatus(available=False)`` (again every ``status_interval`` seconds while the retries keep
failing, so gateways that start mid-outage learn it too), and ``StoreStatus(available=True)``
right after the first COMMIT that follows, and once at start-up when the database answers. The
batch itself is retried as before by the base class. The announcements are best effort: with
the broker down as well, they are logged and the retries go on. A batch that takes longer than
``store_timeout`` (a database link frozen without closing, a lock never granted) counts as an
outage too, so gateways refuse sends within seconds instead of leaving them waiting.

Who hears of a result: a newly stored message, and any message from a *redelivered* delivery
(the worker before may have died between its COMMIT and its publish, so this copy may be the
only one), goes to everyone who may see it. A duplicate from a fresh delivery is a resend by
its sender (its first copy was or will be published from its own delivery): only the sender's
connections hear it (``MessageStored.resend``), so a resend never shows anything again to
anyone else.

Groups: a gateway publishes the sends that reach it in one turn of its event loop as one
``MessagesSubmitted`` (one publish, one confirm, one delivery for all of them); a gateway of an
older version publishes each as a ``MessageSubmitted``. Both are handled alike: each item is
stored as if it had come alone, with its own result. The base class weighs a group by its items
against the batch size and, when a group fails on its own, splits it: the items that can be
stored are, and one that fails alone is published again alone, so the broker counts its
deliveries and its last attempt is rejected to its sender like any other (see
``chase.bus.consumer``).

Fencing: the store renews the writer lease in every batch's transaction. When another worker
took it over (this one was paused past its lease), the commit fails with ``FencedOut`` and the
worker steps down (see the base class) instead of committing behind the new one.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Protocol

from sqlalchemy.exc import DBAPIError, OperationalError

from chase import metrics, routing
from chase.bus.consumer import BatchConsumer
from chase.bus.port import Bus, BusUnavailable, Delivery, QueueSpec
from chase.clock import Clock, SystemClock
from chase.logging import get_logger
from chase.schemas import (
    STORE_STATUS_INTERVAL_SECONDS,
    Event,
    MessageRejected,
    MessagesStored,
    MessagesSubmitted,
    MessageStored,
    MessageSubmitted,
    RoomCommand,
    StoreStatus,
)
from services.persistence.errors import RejectCode
from services.persistence.lease import FencedOut, LeaseHeld
from services.persistence.store import Rejected, Stored, StoreResult

log = get_logger(__name__)

#: Durable, and one active consumer at a time: commit order equals id order, so id cursors
#: have no gaps. A second worker waits as a hot standby.
#: Each submission may fail (or be left unacked by a worker that died) this many times; on its
#: last attempt the sender is told ``rejected`` and it is dead-lettered. The broker counts.
DELIVERY_LIMIT = 5

PERSISTENCE_QUEUE_SPEC = QueueSpec(
    routing.PERSISTENCE_QUEUE,
    bindings=(routing.MESSAGE_SUBMITTED, routing.ROOM_COMMAND),
    durable=True,
    single_active_consumer=True,
    delivery_limit=DELIVERY_LIMIT,
)


class BatchStore(Protocol):
    async def store_batch(self, submitted: Sequence[MessageSubmitted]) -> list[StoreResult]: ...


class RoomApplier(Protocol):
    """``services.persistence.room_commands.RoomCommands``: applies one membership change and
    returns the events to publish (raises only for failures worth retrying)."""

    async def outcome(self, command: RoomCommand) -> list[tuple[str, Event]]: ...


def outgoing(result: StoreResult, *, redelivered: bool = False) -> tuple[str, Event]:
    """The routing key and event that announce one store result (see the module docstring
    for who hears a duplicate)."""
    if isinstance(result, Stored):
        message = result.message
        if result.duplicate and not redelivered:
            return routing.message_resent(message.sender.id), MessageStored(
                message=message, duplicate=True, resend=True
            )
        key = routing.message_stored(message.sender.id, message.recipient_id, message.room_id)
        return key, MessageStored(message=message, duplicate=result.duplicate)
    assert isinstance(result, Rejected)
    return routing.message_rejected(result.sender_id), MessageRejected(
        sender_id=result.sender_id, client_msg_id=result.client_msg_id, code=result.code, reason=result.reason
    )


def submissions(event: Event) -> list[MessageSubmitted]:
    """The submissions an event of the persistence queue carries: a group's items, or the one
    message; none for anything else."""
    if isinstance(event, MessagesSubmitted):
        return list(event.items)
    if isinstance(event, MessageSubmitted):
        return [event]
    return []


def grouped(items: Sequence[tuple[str, Event]]) -> list[tuple[str, Event]]:
    """``items`` in the same order, each run of consecutive ``MessageStored`` with the same
    routing key as one ``MessagesStored``: the broker routes a key the same way whatever the
    event, so every queue gets the same messages in the same order, in one delivery per run
    (a batch of the public room: one publish instead of up to ``batch_size``)."""
    out: list[tuple[str, Event]] = []
    run: list[MessageStored] = []
    run_key = ""

    def close_run() -> None:
        if len(run) == 1:
            out.append((run_key, run[0]))
        elif run:
            out.append((run_key, MessagesStored(items=list(run))))
        run.clear()

    for key, event in items:
        if not (isinstance(event, MessageStored) and key == run_key):
            close_run()
        if isinstance(event, MessageStored):
            run.append(event)
            run_key = key
        else:
            out.append((key, event))
    close_run()
    return out


#: MySQL/MariaDB errors that say nothing about the statement: too many connections, lock wait
#: timeout, deadlock, cannot connect, server gone, connection lost, statement timeout
#: (max_statement_time), disconnected by the server (an idle transaction ended).
_MYSQL_TRANSIENT = frozenset({1040, 1205, 1213, 1969, 2002, 2003, 2006, 2013, 4031})


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


#: The transient errors that mean the database cannot be reached at all, with the reason the
#: gateways are given. Lock waits and deadlocks are left out on purpose: the next attempt
#: usually gets past them, and refusing every send for one would make gateways flap.
_MYSQL_UNREACHABLE = {
    1040: "the database has too many connections",
    2002: "cannot connect to the database",
    2003: "cannot connect to the database",
    2006: "the database server has gone away",
    2013: "lost the connection to the database",
    1969: "the database does not answer in time",
    4031: "lost the connection to the database",
}
_NO_ANSWER = "the database does not answer in time"
_LOST_CONNECTION = "lost the connection to the database"
_STORE_ANSWERS = "the database answers"
#: How long the start-up check may wait for the database before the worker starts anyway.
PROBE_TIMEOUT = 5.0


def outage_reason(exc: Exception) -> str | None:
    """A short reason, safe to publish (no URL, host or password), when ``exc`` from the store
    means the database is unreachable; None for any other failure."""
    if isinstance(exc, TimeoutError):
        return _NO_ANSWER
    if isinstance(exc, ConnectionError):
        return _LOST_CONNECTION
    if not isinstance(exc, DBAPIError):
        return None
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_UNREACHABLE:
        return _MYSQL_UNREACHABLE[args[0]]
    return _LOST_CONNECTION if exc.connection_invalidated else None


class PersistenceWorker(BatchConsumer):
    """Consumes ``message.submitted`` (single sends and gateways' groups of them) and room
    commands; call ``start()`` once the bus is started, ``stop()`` to end."""

    def __init__(
        self,
        bus: Bus,
        store: BatchStore,
        *,
        max_batch: int = 200,
        max_wait: float = 0.002,
        retry_delay: float = 0.05,
        probe: Callable[[], Awaitable[None]] | None = None,
        clock: Clock | None = None,
        status_interval: float = STORE_STATUS_INTERVAL_SECONDS,
        store_timeout: float = 5.0,
        kill_after_commits: int = 0,
        rooms: RoomApplier | None = None,
    ) -> None:
        """``probe`` (e.g. ``MessageStore.probe``) is awaited once in :meth:`start`: when it
        returns, the gateways are told the store is available. A batch not stored within
        ``store_timeout`` seconds counts as a store outage. ``kill_after_commits`` (fault
        tests only; 0: off) makes the process SIGKILL itself right after that many COMMITs,
        before publishing or acking anything."""
        super().__init__(
            bus,
            PERSISTENCE_QUEUE_SPEC,
            max_batch=max_batch,
            max_wait=max_wait,
            retry_delay=retry_delay,
        )
        self._store_timeout = store_timeout
        self._kill_after_commits = kill_after_commits
        self._commits = 0
        self._store = store
        self._rooms = rooms
        self._probe = probe
        self._clock = clock or SystemClock()
        self._status_interval = status_interval
        #: The availability the gateways were last told successfully (None: nothing yet).
        self._told: bool | None = None
        #: When "unavailable" was last published (or tried) in the current outage; None: no outage.
        self._down_told_at: float | None = None

    async def start(self) -> None:
        """Announce the store as available if it answers, then consume (see the base class)."""
        if self._probe is not None:
            try:
                await asyncio.wait_for(self._probe(), PROBE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - the first batch will tell; do not fail start-up
                log.warning("store_probe_failed", error=repr(exc))
            else:
                # Clears a stale "unavailable" that gateways kept from a worker that died mid-outage.
                await self._tell(True, _STORE_ANSWERS)
        await super().start()

    def is_transient(self, exc: Exception) -> bool:
        """Database or broker down, or a batch that took too long, or another worker's lease
        still running: retry until it passes, never dead-letter for it."""
        return isinstance(exc, BusUnavailable | ConnectionError | TimeoutError | LeaseHeld) or _database_down(exc)

    async def is_outage(self, exc: Exception) -> bool:
        """A failure :meth:`is_transient` cannot name is an outage when the database does not
        answer right after it. A link cut inside a transaction can surface as the driver's own
        error (``RuntimeError: unable to perform operation on <TCPTransport closed=True>``), not
        as a MySQL code; splitting the batch for it would send a message back to the queue
        while the ones its sender made after it are stored first."""
        if self._probe is None or isinstance(exc, FencedOut):
            return False
        try:
            await asyncio.wait_for(self._probe(), self._store_timeout)
        except Exception as unanswered:  # noqa: BLE001 - whatever it is, the database did not answer
            log.warning("store_failure_is_an_outage", error=repr(exc), probe=repr(unanswered))
            return True
        return False

    def transient_pause(self, exc: Exception, attempt: int) -> float | None:
        """While another worker's lease runs, try again right when it runs out."""
        if isinstance(exc, LeaseHeld):
            expires = exc.expires_at.replace(tzinfo=UTC) if exc.expires_at.tzinfo is None else exc.expires_at
            return max(0.05, (expires - self._clock.now()).total_seconds() + 0.01)
        return None

    def steps_down(self, exc: Exception) -> bool:
        """Another worker holds the lease now: give everything back and wait as a standby."""
        return isinstance(exc, FencedOut)

    def parts(self, event: Event) -> Sequence[Event] | None:
        """A gateway's group of sends is split into them when it fails on its own."""
        return event.items if isinstance(event, MessagesSubmitted) else None

    async def on_poison(self, delivery: Delivery, exc: Exception) -> None:
        """Tell the sender at once that this message (each of a group's) will never be stored."""
        for event in submissions(delivery.event):
            rejected = Rejected(event.sender.id, event.client_msg_id, RejectCode.REJECTED,
                                "the message could not be stored")
            metrics.PERSISTENCE_REJECTED.labels(RejectCode.REJECTED).inc()
            await self.bus.publish(*outgoing(rejected))

    async def handle_batch(self, deliveries: list[Delivery]) -> None:
        """Store the batch, then publish every result; raising sends the whole batch back.

        Room membership commands share the queue, so they are applied in order with the
        messages around them: the messages before a command are stored and published first,
        then the command, then the rest. A batch retried after a part of it was committed
        stores nothing twice (messages and commands are both idempotent by their ids).
        """
        run: list[Delivery] = []
        for delivery in deliveries:
            if isinstance(delivery.event, RoomCommand):
                await self._store_messages(run)
                run = []
                await self._apply_room_command(delivery.event)
            else:
                run.append(delivery)
        await self._store_messages(run)

    async def _apply_room_command(self, command: RoomCommand) -> None:
        if self._rooms is None:
            log.warning("persistence_skipped_event", event_type=command.type)
            return
        try:
            events = await asyncio.wait_for(self._rooms.outcome(command), self._store_timeout)
        except Exception as exc:
            reason = outage_reason(exc)
            if reason is not None:
                await self._store_unreachable(reason)
            raise
        self._down_told_at = None
        await self.bus.publish_many(events)

    async def _store_messages(self, deliveries: list[Delivery]) -> None:
        submitted: list[MessageSubmitted] = []
        redelivered: list[bool] = []
        for delivery in deliveries:
            items = submissions(delivery.event)
            if not items:
                # Only a misrouted binding puts anything else here; retrying would not help.
                log.warning("persistence_skipped_event", event_type=delivery.event.type)
            submitted.extend(items)
            redelivered.extend([delivery.redelivered] * len(items))
        if not submitted:
            return
        started = self._clock.monotonic()
        try:
            results = await asyncio.wait_for(self._store.store_batch(submitted), self._store_timeout)
        except Exception as exc:
            reason = outage_reason(exc)
            # A worker whose deliveries' channel is gone (it was paused, say, and the queue
            # went to the standby) says nothing: its news would be stale, and wrong.
            if reason is not None and not any(d.stale for d in deliveries):
                await self._store_unreachable(reason)
            raise  # the base class retries the batch (or steps down)
        self._commits += 1
        if self._kill_after_commits and self._commits >= self._kill_after_commits:
            log.warning("fault_hook_kill_after_commit", commits=self._commits)
            os.kill(os.getpid(), signal.SIGKILL)
        _count_batch(results, self._clock.monotonic() - started)
        self._down_told_at = None
        if self._told is not True:
            # The first COMMIT since an outage (or ever): gateways may accept sends again. It
            # goes out before the results, so senders who see their ack can send at once.
            await self._tell(True, _STORE_ANSWERS)
        # In id order, so each gateway sees messages in the order they were committed; runs
        # sharing a routing key go as one event, and the confirms are awaited together.
        await self.bus.publish_many(
            grouped([outgoing(result, redelivered=again) for result, again in zip(results, redelivered, strict=True)])
        )
        rejected = sum(isinstance(r, Rejected) for r in results)
        log.debug("persistence_batch_done", size=len(results), rejected=rejected)

    async def _store_unreachable(self, reason: str) -> None:
        # On the first failure of an outage, then at most every status_interval: the retries
        # come back at least every MAX_RETRY_DELAY, so gateways hear it again well within the
        # 3 x status_interval after which they forget it.
        now = self._clock.monotonic()
        if self._down_told_at is None:
            metrics.PERSISTENCE_STORE_OUTAGES.inc()  # the first failure of this outage
        elif now - self._down_told_at < self._status_interval:
            return
        self._down_told_at = now
        await self._tell(False, reason)

    async def _tell(self, available: bool, reason: str) -> None:
        """Publish a StoreStatus, best effort: a broker that is down too is only logged."""
        event = StoreStatus(available=available, reason=reason, sent_at=self._clock.now())
        try:
            await self.bus.publish(routing.STORE_STATUS, event)
        except BusUnavailable as exc:
            log.warning("store_status_not_published", available=available, error=str(exc))
            return
        if self._told is not available:
            log_method = log.info if available else log.warning
            log_method("store_status", available=available, reason=reason)
        self._told = available


def _count_batch(results: list[StoreResult], seconds: float) -> None:
    """Metrics of one committed batch. A redelivered batch counts again, as duplicates."""
    metrics.PERSISTENCE_BATCHES.inc()
    metrics.PERSISTENCE_BATCH_MESSAGES.observe(len(results))
    metrics.PERSISTENCE_STORE_SECONDS.observe(seconds)
    for result in results:
        if isinstance(result, Rejected):
            metrics.PERSISTENCE_REJECTED.labels(result.code).inc()
        elif result.duplicate:
            metrics.PERSISTENCE_DUPLICATES.inc()
        else:
            metrics.PERSISTENCE_STORED.inc()
