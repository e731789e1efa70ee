"""Fan-out: from this gateway's queue on the bus to the outbox of every local connection.

Topology (see ``chase.routing``): one exclusive queue per gateway, bound to the public room and
to presence, plus ``routing.user_bindings(u)`` for every user ``u`` with at least one connection
here (bound on their first connection, unbound on their last). A public message therefore costs
the broker one copy per gateway; a private one reaches only gateways holding either person.

Each :class:`Connection` owns a bounded outbox and one writer task draining it to the socket.
:meth:`Connection.deliver` never waits: when the outbox is full the client is not reading, so
it is disconnected (4008 "too slow") and nobody else is held up.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from typing import Protocol

from chase import metrics, routing
from chase.bus.port import Bus, BusUnavailable, Delivery, QueueSpec, Subscription
from chase.clock import SystemClock
from chase.logging import get_logger
from chase.schemas import (
    ErrorFrame,
    Event,
    GatewayHeartbeat,
    MessageFrame,
    MessageRejected,
    MessageStored,
    PresenceChanged,
    PresenceFrame,
    ResyncFrame,
    ServerFrame,
    SessionRevoked,
    StoreStatus,
    encode,
)
from services.gateway.availability import StoreAvailability
from services.gateway.errors import REASON_TOO_SLOW, CloseCode
from services.gateway.presence import PresenceTracker, PresenceUpdate
from services.gateway.session import Action, Close, ConnectionSession, Send

log = get_logger("chase.gateway")

#: Events waiting in a gateway's queue before the oldest are dropped: a gateway that cannot
#: keep up must not make the broker hold unbounded memory (clients resync by id).
GATEWAY_QUEUE_MAX_LENGTH = 100_000
#: What a connection is told when this gateway's queue was re-established.
RESYNC_REASON = "live delivery was interrupted; sync from your cursor"


class TooManyConnections(Exception):
    """The user already has as many connections on this gateway as one user may."""


class FrameSink(Protocol):
    """Where a connection's frames go: a WebSocket, or a list in a unit test."""

    async def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Connection:
    """One client: its session, its outbox and the task that writes the outbox out.

    Call :meth:`start` once, :meth:`apply` for actions that need no I/O of their own, and
    :meth:`finish` when the connection is over.
    """

    def __init__(
        self, session: ConnectionSession, sink: FrameSink, outbox_size: int, outbox_bytes: int | None = None
    ) -> None:
        self.session = session
        self._sink = sink
        # Frames are encoded when queued, so the bound is on what they really cost: one
        # history page can be ~850 KB, and 1000 of them would be most of a gigabyte.
        self._outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=outbox_size)
        self._outbox_bytes = outbox_bytes
        self.queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    @property
    def user_id(self) -> int:
        return self.session.user.id

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    def start(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def deliver(self, frame: ServerFrame) -> None:
        """Queue ``frame`` for the client without waiting; a full outbox disconnects it."""
        if self.closing:
            return
        text = encode(frame)
        size = len(text)  # characters: the UTF-8 size is at most 4x, and JSON is mostly ASCII
        over_bytes = self._outbox_bytes is not None and self.queued_bytes + size > self._outbox_bytes
        # One frame larger than the whole budget still goes to a client that has read
        # everything else: an empty outbox is never "too slow".
        if (over_bytes and self.queued_bytes > 0) or self._outbox.full():
            log.warning("client too slow, disconnecting", user_id=self.user_id, session_id=self.session.session_id)
            metrics.GATEWAY_SLOW_CLIENTS_DROPPED.inc()
            self.close_soon(CloseCode.TOO_SLOW, REASON_TOO_SLOW)
            return
        self._outbox.put_nowait(text)
        self.queued_bytes += size
        # Counted here because every frame for this client passes through, whoever made it.
        if isinstance(frame, MessageFrame):
            metrics.GATEWAY_MESSAGES_FANNED_OUT.inc()
        elif isinstance(frame, ErrorFrame):
            metrics.GATEWAY_ERRORS_SENT.labels(frame.code).inc()

    def apply(self, actions: Iterable[Action]) -> None:
        """Carry out Send and Close actions (the only ones bus events produce)."""
        for action in actions:
            if isinstance(action, Send):
                self.deliver(action.frame)
            elif isinstance(action, Close):
                self.close_soon(action.code, action.reason)
            else:  # pragma: no cover - a programming error, not a client's
                raise TypeError(f"{type(action).__name__} needs the server to carry it out")

    def close_soon(self, code: int, reason: str) -> None:
        """Close now, without waiting for the outbox: the reader loop then ends."""
        if self.closing:
            return
        self.close_code = code
        if self._writer is not None:
            self._writer.cancel()
        self._closer = asyncio.get_running_loop().create_task(self._sink.close(code, reason))

    async def finish(self) -> None:
        """Stop the writer and wait for a close in progress."""
        tasks = [t for t in (self._writer, self._closer) if t is not None]
        if self._writer is not None and not self._writer.done() and self._closer is None:
            self._writer.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drained(self) -> None:
        """Wait until every queued frame was handed to the socket (tests, graceful close)."""
        await self._outbox.join()

    async def _write_loop(self) -> None:
        while True:
            text = await self._outbox.get()
            try:
                await self._sink.send(text)
            except Exception:  # noqa: BLE001 - the socket is gone; the reader loop sees it too
                log.debug("write failed", user_id=self.user_id, exc_info=True)
                return
            finally:
                self.queued_bytes -= len(text)
                self._outbox.task_done()


class FanOut:
    """The registry of local connections and the consumer of this gateway's queue.

    ``await start()`` before adding connections; ``await stop()`` after the last is removed.
    """

    def __init__(
        self,
        bus: Bus,
        presence: PresenceTracker,
        *,
        store: StoreAvailability | None = None,
        prefetch: int = 200,
        max_connections_per_user: int | None = None,
    ) -> None:
        self._bus = bus
        self._max_per_user = max_connections_per_user
        self.presence = presence
        #: Fed by the worker's StoreStatus events; give the same object to every session.
        self.store = store or StoreAvailability(SystemClock())
        self.queue_name = routing.gateway_queue(presence.gateway_id)
        self._prefetch = prefetch
        self._by_user: dict[int, set[Connection]] = {}
        # Binding is awaited; a lock per user keeps that user's connects and disconnects from
        # interleaving, while different users connect in parallel (a reconnect storm after a
        # gateway restart would otherwise queue every user behind everyone else's bindings).
        # Weak values: a lock lives only while someone holds or waits for it.
        self._user_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Declare and consume the gateway queue; raises BusUnavailable if the broker is down."""
        spec = QueueSpec(
            self.queue_name,
            bindings=routing.GATEWAY_STATIC_BINDINGS,
            durable=False,
            exclusive=True,
            max_length=GATEWAY_QUEUE_MAX_LENGTH,
        )
        self._subscription = await self._bus.consume(spec, self._on_delivery, prefetch=self._prefetch)
        self._bus.on_reconnect(self._queue_restored)

    async def _queue_restored(self) -> None:
        """The broker connection came back and with it a new queue: whatever was published
        meanwhile never reached this gateway. Bind every local user again (the adapter has
        restored the bindings it knew; binding twice is harmless), then tell every connection
        to sync, so nobody is left with a silent gap."""
        for user_id in list(self._by_user):
            async with self._lock_for(user_id):
                if user_id not in self._by_user:
                    continue
                for binding in routing.user_bindings(user_id):
                    try:
                        await self._bus.bind(self.queue_name, binding)
                    except BusUnavailable as exc:
                        # Lost again: the next reconnection calls this again.
                        log.warning("re-binding after reconnect failed", error=str(exc))
                        return
        frame = ResyncFrame(reason=RESYNC_REASON)
        connections = self.connections()
        for conn in connections:
            conn.deliver(frame)
        log.warning("fan-out queue re-established, clients told to sync", connections=len(connections))

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None

    def connections(self) -> list[Connection]:
        return [c for conns in self._by_user.values() for c in conns]

    async def add(self, conn: Connection) -> None:
        """Bind the user's events, send ``conn`` its hello, then register it for events.

        Raises :class:`BusUnavailable` when the user's bindings could not be made: the caller
        must then close the connection (1013), it would miss its own acks; and
        :class:`TooManyConnections` when the user is at the cap (close 4429).
        """
        async with self._lock_for(conn.user_id):
            conns = self._by_user.get(conn.user_id)
            if conns is not None and self._max_per_user is not None and len(conns) >= self._max_per_user:
                raise TooManyConnections()
            if conns is None:
                for binding in routing.user_bindings(conn.user_id):
                    await self._bus.bind(self.queue_name, binding)
            update = self.presence.connected(conn.session.user)
            # No await from here on: the hello is the first frame, events follow it, and
            # whoever connects next already sees this user online.
            conn.apply(conn.session.start(self.presence.online_user_ids()))
            self._by_user.setdefault(conn.user_id, set()).add(conn)
        await self._announce(update)

    def _lock_for(self, user_id: int) -> asyncio.Lock:
        lock = self._user_locks.get(user_id)
        if lock is None:
            lock = self._user_locks[user_id] = asyncio.Lock()
        return lock

    async def remove(self, conn: Connection) -> None:
        """Forget ``conn``; unbinds its user when it was their last connection here."""
        async with self._lock_for(conn.user_id):
            conns = self._by_user.get(conn.user_id)
            if conns is None or conn not in conns:
                return
            conns.discard(conn)
            if not conns:
                del self._by_user[conn.user_id]
                for binding in routing.user_bindings(conn.user_id):
                    try:
                        await self._bus.unbind(self.queue_name, binding)
                    except (BusUnavailable, KeyError):
                        # The queue is gone with the broker connection; nothing left to unbind.
                        break
            update = self.presence.disconnected(conn.session.user)
        await self._announce(update)

    async def beat(self) -> None:
        """One heartbeat: expire silent gateways and tell the others we are alive."""
        self.broadcast(self.presence.expire())
        try:
            await self._bus.publish(routing.presence(self.presence.gateway_id), self.presence.heartbeat())
        except BusUnavailable as exc:
            log.warning("presence heartbeat not published", error=str(exc))

    def broadcast(self, frames: list[PresenceFrame]) -> None:
        for conn in self.connections():
            for frame in frames:
                conn.deliver(frame)

    def dispatch(self, event: Event) -> None:
        """Route one bus event to the connections that may see it."""
        if isinstance(event, PresenceChanged | GatewayHeartbeat):
            self.broadcast(self.presence.on_event(event))
            return
        if isinstance(event, StoreStatus):
            if self.store.update(event):
                if event.available:
                    log.info("store available again, accepting sends")
                else:
                    log.warning("store unavailable, refusing sends", reason=event.reason)
            return
        for conn in self._targets(event):
            conn.apply(conn.session.on_event(event))

    def _targets(self, event: Event) -> list[Connection]:
        if isinstance(event, MessageStored):
            message = event.message
            if event.resend:
                return list(self._by_user.get(message.sender.id, ()))
            if message.recipient_id is None:
                return self.connections()
            users: tuple[int, ...] = (message.sender.id, message.recipient_id)
        elif isinstance(event, MessageRejected):
            users = (event.sender_id,)
        elif isinstance(event, SessionRevoked):
            users = (event.user_id,)
        else:
            return []
        return [c for uid in set(users) for c in self._by_user.get(uid, ())]

    async def _on_delivery(self, delivery: Delivery) -> None:
        try:
            self.dispatch(delivery.event)
        except Exception:  # noqa: BLE001 - one bad event must not stop the fan-out
            log.exception("fan-out failed", routing_key=delivery.routing_key)
        # Acked either way: redelivering to the same local connections would not go better.
        await delivery.ack()

    async def _announce(self, update: PresenceUpdate) -> None:
        self.broadcast(update.frames)
        if update.publish is None:
            return
        try:
            await self._bus.publish(routing.presence(self.presence.gateway_id), update.publish)
        except BusUnavailable as exc:
            # The next heartbeat carries the same news.
            log.warning("presence change not published", error=str(exc))
