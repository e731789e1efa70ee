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
from collections.abc import Awaitable, Callable, Iterable
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
    RoomCommandResult,
    RoomList,
    ServerFrame,
    SessionRevoked,
    StoreStatus,
    encode,
)
from services.gateway.availability import StoreAvailability
from services.gateway.errors import REASON_TOO_SLOW, CloseCode
from services.gateway.presence import PresenceTracker, PresenceUpdate
from services.gateway.rooms import RoomDirectory, concerned_user
from services.gateway.session import Action, Close, ConnectionSession, Send

log = get_logger("chase.gateway")

#: Events waiting in a gateway's queue before the oldest are dropped: a gateway that cannot
#: keep up must not make the broker hold unbounded memory (clients resync by id).
GATEWAY_QUEUE_MAX_LENGTH = 100_000
#: What a connection is told when this gateway's queue was re-established.
RESYNC_REASON = "live delivery was interrupted; sync from your cursor"
#: What a user's connections are told when this gateway started routing a room they joined.
ROOM_JOINED_REASON = "you joined a room; sync from your cursor"
#: How often a user's rooms are asked for again after the history service did not answer.
ROOM_LOAD_RETRY_SECONDS = 2.0


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
        room_loader: Callable[[int], Awaitable[RoomList]] | None = None,
    ) -> None:
        """``room_loader(user_id)`` fetches a user's rooms (None: no group rooms here)."""
        self._bus = bus
        #: Group room memberships of local users; give the same object to every session.
        self.rooms = RoomDirectory()
        self._room_loader = room_loader
        self._bound_rooms: set[int] = set()
        self._room_lock = asyncio.Lock()
        #: Rooms whose local membership changed and whose binding is not settled yet, and the
        #: users who joined them (told to sync once the room is newly bound).
        self._unsettled: dict[int, set[int]] = {}
        self._room_loads: set[asyncio.Task[None]] = set()
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
        async with self._room_lock:
            for room_id in sorted(self.rooms.rooms()):
                try:
                    await self._bus.bind(self.queue_name, routing.room_binding(room_id))
                except BusUnavailable as exc:
                    log.warning("re-binding rooms after reconnect failed", error=str(exc))
                    return
                self._bound_rooms.add(room_id)
        frame = ResyncFrame(reason=RESYNC_REASON)
        connections = self.connections()
        for conn in connections:
            conn.deliver(frame)
        log.warning("fan-out queue re-established, clients told to sync", connections=len(connections))

    async def stop(self) -> None:
        for task in list(self._room_loads):
            task.cancel()
        await asyncio.gather(*self._room_loads, return_exceptions=True)
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
                # After the user's bindings: membership events from now on reach us.
                await self._load_rooms(conn.user_id)
            update = self.presence.connected(conn.session.user)
            # No await from here on: the hello is the first frame, events follow it, and
            # whoever connects next already sees this user online.
            conn.apply(conn.session.start(self.presence.online_user_ids()))
            self._by_user.setdefault(conn.user_id, set()).add(conn)
        await self._announce(update)

    # --- group rooms ---------------------------------------------------------------------------

    async def _load_rooms(self, user_id: int) -> None:
        """Learn the rooms of a user whose first connection arrives, and bind them. When the
        history service does not answer, the user connects anyway and the rooms are asked for
        again in the background (their connections are told to sync once they are known)."""
        if self._room_loader is None:
            return
        self.rooms.begin_load(user_id)
        if not await self._try_load_rooms(user_id):
            task = asyncio.get_running_loop().create_task(self._load_rooms_later(user_id))
            self._room_loads.add(task)
            task.add_done_callback(self._room_loads.discard)

    async def _try_load_rooms(self, user_id: int) -> bool:
        assert self._room_loader is not None
        try:
            listed = await self._room_loader(user_id)
        except Exception as exc:  # noqa: BLE001 - any failure: the user connects, rooms come later
            log.warning("rooms of a connecting user unavailable", user_id=user_id, error=str(exc))
            return False
        joined = [room.id for room in listed.rooms if room.role not in (None, "invited")]
        await self.settle_rooms(self.rooms.finish_load(user_id, joined, listed.as_of))
        return True

    async def _load_rooms_later(self, user_id: int) -> None:
        while user_id in self._by_user or self.rooms.is_local(user_id):
            await asyncio.sleep(ROOM_LOAD_RETRY_SECONDS)
            if user_id not in self._by_user:
                self.rooms.forget(user_id)
                return
            if await self._try_load_rooms(user_id):
                for conn in self._by_user.get(user_id, ()):
                    conn.deliver(ResyncFrame(reason=ROOM_JOINED_REASON))
                return

    async def settle_rooms(self, room_ids: Iterable[int] | None = None) -> None:
        """Bind the rooms that have local members and unbind those that have none left
        (``room_ids``, or every room changed by events since the last call). Users who joined
        a room that was newly bound are told to sync: messages stored right after their join
        may have been routed before the binding existed."""
        if room_ids is None:
            changed, self._unsettled = self._unsettled, {}
        else:
            changed = {room_id: self._unsettled.pop(room_id, set()) for room_id in room_ids}
        if not changed:
            return
        newly: list[int] = []
        async with self._room_lock:
            for room_id in sorted(changed):
                wanted = bool(self.rooms.local_members(room_id))
                try:
                    if wanted and room_id not in self._bound_rooms:
                        await self._bus.bind(self.queue_name, routing.room_binding(room_id))
                        self._bound_rooms.add(room_id)
                        newly.append(room_id)
                    elif not wanted and room_id in self._bound_rooms:
                        self._bound_rooms.discard(room_id)
                        await self._bus.unbind(self.queue_name, routing.room_binding(room_id))
                except (BusUnavailable, KeyError) as exc:
                    # The queue is gone with the broker connection: _queue_restored binds again.
                    log.warning("room binding not changed", room_id=room_id, error=str(exc))
        for room_id in newly:
            for user_id in changed[room_id]:
                for conn in self._by_user.get(user_id, ()):
                    conn.deliver(ResyncFrame(reason=ROOM_JOINED_REASON))

    def _room_event(self, event: MessageStored) -> None:
        changed = self.rooms.on_event(event.message, self._by_user)
        user_id = concerned_user(event.message)
        for room_id in changed:
            joiners = self._unsettled.setdefault(room_id, set())
            if user_id is not None and self.rooms.is_member(user_id, room_id):
                joiners.add(user_id)

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
                await self.settle_rooms(self.rooms.forget(conn.user_id))
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
        if isinstance(event, MessageStored) and event.message.event is not None:
            # Before routing: a removed user gets their removal and nothing after it.
            self._room_event(event)
        for conn in self._targets(event):
            conn.apply(conn.session.on_event(event))

    def _targets(self, event: Event) -> list[Connection]:
        if isinstance(event, MessageStored):
            message = event.message
            if event.resend:
                return list(self._by_user.get(message.sender.id, ()))
            if message.room_id is not None:
                # The sender too: their ack, even if removed since (nothing else reaches them).
                users = (*self.rooms.local_members(message.room_id), message.sender.id)
                concerned = concerned_user(message)
                if concerned is not None:
                    users += (concerned,)
                return [c for uid in set(users) for c in self._by_user.get(uid, ())]
            if message.recipient_id is None:
                return self.connections()
            users: tuple[int, ...] = (message.sender.id, message.recipient_id)
        elif isinstance(event, MessageRejected):
            users = (event.sender_id,)
        elif isinstance(event, SessionRevoked):
            users = (event.user_id,)
        elif isinstance(event, RoomCommandResult):
            users = (event.actor_id,)
        else:
            return []
        return [c for uid in set(users) for c in self._by_user.get(uid, ())]

    async def _on_delivery(self, delivery: Delivery) -> None:
        try:
            self.dispatch(delivery.event)
            if self._unsettled:
                await self.settle_rooms()
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
