"""Fan-out: from this gateway's queue on the bus to the socket of every local connection.

Topology (see ``chase.routing``): one exclusive queue per gateway, bound to the public room and
to presence, plus ``routing.user_bindings(u)`` for every user ``u`` with at least one connection
here (bound on their first connection, unbound on their last). A public message therefore costs
the broker one copy per gateway; a private one reaches only gateways holding either person.

Writing costs what the socket costs (see ``docs/benchmarks.md``, "Where the time goes"):

- a frame for many connections is serialised **once**, and the same bytes are written to each;
- a frame goes **straight to the connection's transport**, with no task and no queue per
  connection: :meth:`Connection.deliver` appends the bytes to a short pending list, and one
  :class:`Flusher` callback per event-loop turn hands every connection's pending frames to its
  sink in one write (several frames ready at once become one TLS write and one system call);
- a connection's outbox is what it has pending plus what its transport has not sent yet. Past
  ``outbox_bytes``, or past ``outbox_size`` frames written since its transport was last empty,
  the client is not reading: it is closed with 4008 and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import random
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
    MessagesStored,
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
from services.gateway.presence import PresenceChange, PresenceTracker, PresenceUpdate
from services.gateway.rooms import RoomDirectory, concerned_user
from services.gateway.session import Action, Close, ConnectionSession, Send

log = get_logger("chase.gateway")

#: Events waiting in a gateway's queue before the oldest are dropped: a gateway that cannot
#: keep up must not make the broker hold unbounded memory (clients resync by id).
GATEWAY_QUEUE_MAX_LENGTH = 100_000
#: The same bound in bytes: one stored event may carry a run of up to a batch of messages.
GATEWAY_QUEUE_MAX_BYTES = 64 * 1024 * 1024
#: Bindings in flight to the broker at once. They share one channel, whose calls the broker
#: answers in order: a storm of connects queued there all at once would each wait behind the
#: others, and one that runs out of time is cancelled, which closes the channel (and with it
#: the gateway's consumer). In line here instead, each bind's own time limit starts when it
#: is sent.
BINDS_IN_FLIGHT = 8
#: How long a connect may wait in that line before it is refused (1013, try again later).
#: What bounds the line is the gateway's max_connections (each one waiting holds a place);
#: this only bounds one client's wait. A refused client comes back with a new TLS handshake
#: and token check, which costs more than waiting: long enough for a reconnect storm of
#: thousands on a busy broker, shorter than a client's patience.
BIND_QUEUE_SECONDS = 30.0
#: What a connection is told when this gateway's queue was re-established.
RESYNC_REASON = "live delivery was interrupted; sync from your cursor"
#: What a user's connections are told when this gateway started routing a room they joined.
ROOM_JOINED_REASON = "you joined a room; sync from your cursor"
#: How often a user's rooms are asked for again after the history service did not answer.
ROOM_LOAD_RETRY_SECONDS = 2.0
ROOM_LOAD_RETRY_MAX_SECONDS = 30.0


class TooManyConnections(Exception):
    """The user already has as many connections on this gateway as one user may."""


class FrameSink(Protocol):
    """Where a connection's frames go: a WebSocket, or a list in a unit test."""

    def write(self, frames: list[bytes]) -> None:
        """Send these UTF-8 JSON text frames, in order, without waiting (buffer what the
        socket does not take now)."""

    def backlog(self) -> int:
        """Bytes written and not yet taken by the socket."""

    async def close(self, code: int, reason: str) -> None: ...


class Flusher:
    """Writes out every connection with pending frames once per event-loop turn.

    One callback for the whole gateway, not a task per connection: delivering a public message
    to N connections costs N list appends, then N sink writes in the next turn, each carrying
    whatever else became ready for that connection meanwhile.
    """

    __slots__ = ("_dirty",)

    def __init__(self) -> None:
        self._dirty: list[Connection] = []

    def schedule(self, conn: Connection) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self.flush)
        self._dirty.append(conn)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            try:
                conn.flush()
            except Exception:  # noqa: BLE001 - one broken connection must not stall the others
                log.exception("flush failed", user_id=conn.user_id)


class Connection:
    """One client: its session, and its outbox (pending frames and the socket's backlog).

    Call :meth:`start` once (frames delivered before it wait), :meth:`apply` for actions that
    need no I/O of their own, and :meth:`finish` when the connection is over.
    """

    # One per connection, most of them idle: slots, no instance dict.
    __slots__ = (
        "session", "_sink", "_outbox_size", "_outbox_bytes", "_flusher", "_pending", "_pending_bytes",
        "_unsent_frames", "_backlog", "_scheduled", "_started", "_flushed", "_closer", "close_code",
    )

    def __init__(
        self,
        session: ConnectionSession,
        sink: FrameSink,
        outbox_size: int,
        outbox_bytes: int | None = None,
        *,
        flusher: Flusher | None = None,
    ) -> None:
        self.session = session
        self._sink = sink
        self._outbox_size = outbox_size
        # Frames are bounded by what they really cost: one history page can be ~850 KB, and
        # 1000 of them would be most of a gigabyte.
        self._outbox_bytes = outbox_bytes
        self._flusher = flusher or Flusher()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        #: Frames handed to the sink since its backlog was last seen empty.
        self._unsent_frames = 0
        #: The sink's backlog as of the last flush: asked once per flush, not per frame (the
        #: socket only drains in between, so this errs on the side of the bound).
        self._backlog = 0
        self._scheduled = False
        self._started = False
        self._flushed: asyncio.Event | None = None
        self._closer: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    @property
    def user_id(self) -> int:
        return self.session.user.id

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    @property
    def queued_bytes(self) -> int:
        """Bytes of this client's frames not yet taken by its socket."""
        return self._pending_bytes + self._backlog

    def start(self) -> None:
        self._started = True
        if self._pending and not self._scheduled:
            self._scheduled = True
            self._flusher.schedule(self)

    def deliver(self, frame: ServerFrame) -> None:
        """Queue ``frame`` for the client without waiting; a full outbox disconnects it."""
        if self.write(encode(frame).encode()):
            # Counted here for frames made for this client alone; the fan-out counts the
            # frames it shares in bulk, off the per-connection path.
            if isinstance(frame, MessageFrame):
                metrics.GATEWAY_MESSAGES_FANNED_OUT.inc()
            elif isinstance(frame, ErrorFrame):
                metrics.GATEWAY_ERRORS_SENT.labels(frame.code).inc()

    def write(self, data: bytes) -> bool:
        """Queue one encoded frame (shared between connections: never modified); False when
        it was not queued because the connection is closing or just overflowed."""
        if self.closing:
            return False
        size = len(data)
        queued = self._pending_bytes + self._backlog
        over_bytes = self._outbox_bytes is not None and queued + size > self._outbox_bytes
        # One frame larger than the whole budget still goes to a client that has read
        # everything else: an empty outbox is never "too slow".
        over_frames = self._unsent_frames + len(self._pending) >= self._outbox_size
        if (over_bytes and queued > 0) or over_frames:
            log.warning("client too slow, disconnecting", user_id=self.user_id, session_id=self.session.session_id)
            metrics.GATEWAY_SLOW_CLIENTS_DROPPED.inc()
            self.close_soon(CloseCode.TOO_SLOW, REASON_TOO_SLOW)
            return False
        self._pending.append(data)
        self._pending_bytes += size
        if self._started and not self._scheduled:
            self._scheduled = True
            self._flusher.schedule(self)
        return True

    def flush(self) -> None:
        """Hand every pending frame to the sink in one write (the flusher calls it)."""
        self._scheduled = False
        if self.closing or not self._pending:
            return
        frames, self._pending, self._pending_bytes = self._pending, [], 0
        if self._sink.backlog() == 0:
            self._unsent_frames = 0
        try:
            self._sink.write(frames)
        except Exception:  # noqa: BLE001 - the socket is gone; the reader loop sees it too
            log.debug("write failed", user_id=self.user_id, exc_info=True)
            return
        self._unsent_frames += len(frames)
        self._backlog = self._sink.backlog()
        if self._flushed is not None:
            self._flushed.set()

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
        """Close now, without writing what is still pending: the reader loop then ends."""
        if self.closing:
            return
        self.close_code = code
        self._pending, self._pending_bytes = [], 0
        if self._flushed is not None:
            self._flushed.set()
        self._closer = asyncio.get_running_loop().create_task(self._sink.close(code, reason))

    async def finish(self) -> None:
        """Wait for a close in progress."""
        if self._closer is not None:
            await asyncio.gather(self._closer, return_exceptions=True)

    async def drained(self) -> None:
        """Wait until every pending frame was handed to the socket (tests, graceful close)."""
        while self._pending:
            self._flushed = asyncio.Event()
            await self._flushed.wait()


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
        unbind_after: float = 0.0,
        presence_window: float = 0.0,
    ) -> None:
        """``room_loader(user_id)`` fetches a user's rooms (None: no group rooms here).

        ``presence_window``: seconds during which presence changes are gathered into one
        ``presence`` frame for every connection (0: those of one event-loop turn).

        ``unbind_after``: seconds a user's binding outlives their last connection here, so
        that a client reconnecting (a network blip, a reconnect storm after a restart of
        something in between) costs the broker nothing; meanwhile their events reach this
        gateway and are dropped (nobody here to see them). 0 unbinds at once. Their room
        memberships (and so the bindings of those rooms) are kept as long as their binding:
        their membership events keep them current, and a user back in time connects without
        asking the history service for their rooms."""
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
        self._unbind_after = unbind_after
        #: Users whose last connection left and whose binding is kept a while: their timers.
        self._lingering: dict[int, asyncio.TimerHandle] = {}
        self._unbinds: set[asyncio.Task[None]] = set()
        self.presence = presence
        self._presence_window = presence_window
        #: Presence changes not told yet, by user: the latest state of each wins.
        self._presence_pending: dict[int, PresenceChange] = {}
        self._presence_timer: asyncio.TimerHandle | asyncio.Handle | None = None
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
        #: Give it to every Connection of this gateway: one write-out per event-loop turn.
        self.flusher = Flusher()
        self._bind_slots = asyncio.Semaphore(BINDS_IN_FLIGHT)

    async def start(self) -> None:
        """Declare and consume the gateway queue; raises BusUnavailable if the broker is down."""
        spec = QueueSpec(
            self.queue_name,
            bindings=routing.GATEWAY_STATIC_BINDINGS,
            durable=False,
            exclusive=True,
            max_length=GATEWAY_QUEUE_MAX_LENGTH,
            max_length_bytes=GATEWAY_QUEUE_MAX_BYTES,
        )
        self._subscription = await self._bus.consume(spec, self._on_delivery, prefetch=self._prefetch)
        self._bus.on_reconnect(self._queue_restored)

    async def _queue_restored(self) -> None:
        """The broker connection came back and with it a new queue: whatever was published
        meanwhile never reached this gateway. Bind every local user again (the adapter has
        restored the bindings it knew; binding twice is harmless), then tell every connection
        to sync, so nobody is left with a silent gap. Users who are away keep their binding but
        not their rooms: membership events of theirs may have been lost with the queue, so their
        rooms are asked for again when they come back."""
        away: set[int] = set()
        for user_id in self._lingering:
            if user_id not in self._by_user:
                away |= self.rooms.forget(user_id)
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
        await self.settle_rooms(away)
        connections = self.connections()
        self.broadcast([ResyncFrame(reason=RESYNC_REASON)])
        log.warning("fan-out queue re-established, clients told to sync", connections=len(connections))

    async def stop(self) -> None:
        for task in list(self._room_loads):
            task.cancel()
        await asyncio.gather(*self._room_loads, return_exceptions=True)
        for timer in self._lingering.values():
            timer.cancel()
        self._lingering.clear()
        if self._presence_timer is not None:
            self._presence_timer.cancel()
            self._presence_timer = None
        self._presence_pending.clear()
        for task in list(self._unbinds):
            task.cancel()
        await asyncio.gather(*self._unbinds, return_exceptions=True)
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
                timer = self._lingering.pop(conn.user_id, None)
                if timer is not None:
                    timer.cancel()  # still bound: back within the grace period
                else:
                    await self._bind_user(conn.user_id)
                # After the user's binding: membership events from now on reach us. A user
                # back within the grace period still has a list those events kept current.
                if not self.rooms.knows(conn.user_id):
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
        load = self.rooms.begin_load(user_id)
        if not await self._try_load_rooms(user_id, load):
            task = asyncio.get_running_loop().create_task(self._load_rooms_later(user_id, load))
            self._room_loads.add(task)
            task.add_done_callback(self._room_loads.discard)

    async def _try_load_rooms(self, user_id: int, load: int) -> bool:
        assert self._room_loader is not None
        try:
            listed = await self._room_loader(user_id)
        except Exception as exc:  # noqa: BLE001 - any failure: the user connects, rooms come later
            log.warning("rooms of a connecting user unavailable", user_id=user_id, error=str(exc))
            return False
        joined = [room.id for room in listed.rooms if room.role not in (None, "invited")]
        await self.settle_rooms(self.rooms.finish_load(user_id, load, joined, listed.as_of))
        return True

    async def _load_rooms_later(self, user_id: int, load: int) -> None:
        # Backing off, each user at their own moment: when the history service is slow because
        # thousands just connected, every user asking again every 2 s at once kept it slow.
        delay = ROOM_LOAD_RETRY_SECONDS
        while self.rooms.is_loading(user_id, load):
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - spreading, not secrecy
            delay = min(delay * 2, ROOM_LOAD_RETRY_MAX_SECONDS)
            if user_id not in self._by_user or not self.rooms.is_loading(user_id, load):
                # Gone (a connect asks again; the unbind forgets them), or loaded meanwhile.
                return
            if await self._try_load_rooms(user_id, load):
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

    async def _bind_user(self, user_id: int) -> None:
        try:
            async with asyncio.timeout(BIND_QUEUE_SECONDS):
                await self._bind_slots.acquire()
        except TimeoutError:
            raise BusUnavailable("too many connections arriving at once; try again") from None
        try:
            for binding in routing.user_bindings(user_id):
                await self._bus.bind(self.queue_name, binding)
        finally:
            self._bind_slots.release()

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
                if self._unbind_after > 0:
                    # Their rooms stay with their binding (see __init__).
                    self._lingering[conn.user_id] = asyncio.get_running_loop().call_later(
                        self._unbind_after, self._unbind_soon, conn.user_id)
                else:
                    await self._unbind_user(conn.user_id)
                    await self.settle_rooms(self.rooms.forget(conn.user_id))
            update = self.presence.disconnected(conn.session.user)
        await self._announce(update)

    def _unbind_soon(self, user_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._unbind_lingering(user_id))
        self._unbinds.add(task)
        task.add_done_callback(self._unbinds.discard)

    async def _unbind_lingering(self, user_id: int) -> None:
        async with self._lock_for(user_id):
            timer = self._lingering.get(user_id)
            # Back meanwhile (and maybe gone again, with a new timer): not this timer's to undo.
            if user_id in self._by_user or timer is None or timer.when() > asyncio.get_running_loop().time():
                return
            del self._lingering[user_id]
            # No events reach us about them from here on: their rooms go with the binding.
            rooms = self.rooms.forget(user_id)
            await self._unbind_user(user_id)
            await self.settle_rooms(rooms)

    async def _unbind_user(self, user_id: int) -> None:
        async with self._bind_slots:
            for binding in routing.user_bindings(user_id):
                try:
                    await self._bus.unbind(self.queue_name, binding)
                except (BusUnavailable, KeyError):
                    # The queue is gone with the broker connection; nothing left to unbind.
                    break

    async def beat(self) -> None:
        """One heartbeat: expire silent gateways and tell the others we are alive."""
        self.tell_presence(self.presence.expire())
        try:
            await self._bus.publish(routing.presence(self.presence.gateway_id), self.presence.heartbeat())
        except BusUnavailable as exc:
            log.warning("presence heartbeat not published", error=str(exc))

    def tell_presence(self, changes: list[PresenceChange]) -> None:
        """Tell every local connection about ``changes``, together with every other change of
        the same window, in one ``presence`` frame.

        Every connect and disconnect changes presence, and every connection must hear of it:
        one frame per change would cost N x N frames when N clients reconnect at once (the
        time of a reconnect storm went to writing them). Gathered per window it costs one frame
        per connection per window. A client connecting meanwhile already has the latest state
        in its hello; the frame repeats it, which is harmless (presence is a set)."""
        if not changes:
            return
        for change in changes:
            self._presence_pending[change.user.id] = change
        if self._presence_timer is None:
            loop = asyncio.get_running_loop()
            if self._presence_window > 0:
                self._presence_timer = loop.call_later(self._presence_window, self._flush_presence)
            else:
                self._presence_timer = loop.call_soon(self._flush_presence)

    def _flush_presence(self) -> None:
        self._presence_timer = None
        pending, self._presence_pending = self._presence_pending, {}
        changes = sorted(pending.values(), key=lambda c: c.user.id)
        self.broadcast([PresenceFrame(online=[c.user for c in changes if c.online],
                                      offline=[c.user for c in changes if not c.online])])

    def broadcast(self, frames: list[PresenceFrame] | list[ResyncFrame]) -> None:
        """Send ``frames`` to every local connection, each serialised once for all of them."""
        if not frames:
            return
        encoded = [encode(frame).encode() for frame in frames]
        for conns in self._by_user.values():
            for conn in conns:
                for data in encoded:
                    conn.write(data)

    def dispatch(self, event: Event) -> None:
        """Route one bus event to the connections that may see it."""
        if isinstance(event, PresenceChanged | GatewayHeartbeat):
            self.tell_presence(self.presence.on_event(event))
            return
        if isinstance(event, StoreStatus):
            if self.store.update(event):
                if event.available:
                    log.info("store available again, accepting sends")
                else:
                    log.warning("store unavailable, refusing sends", reason=event.reason)
            return
        if isinstance(event, MessagesStored):
            # A run of one batch on one routing key: each in turn, as if it came alone.
            for item in event.items:
                self.dispatch(item)
            return
        if isinstance(event, MessageStored) and event.message.event is not None:
            # Before routing: a removed user gets their removal and nothing after it.
            self._room_event(event)
        targets = self._targets(event)
        if isinstance(event, MessageStored) and not event.resend:
            self._fan_out_message(event, targets)
            return
        for conn in targets:
            conn.apply(conn.session.on_event(event))

    def _fan_out_message(self, event: MessageStored, targets: Iterable[Connection]) -> None:
        """One stored message to its connections: the ``message`` frame is built and
        serialised once and its bytes written to each; the session still decides, per
        connection, whether it may see it and whether it owes its sender an ack."""
        frame = MessageFrame(message=event.message)
        data = encode(frame).encode()
        delivered = 0
        for conn in targets:
            for action in conn.session.on_event(event, frame):
                if isinstance(action, Send) and action.frame is frame:
                    delivered += conn.write(data)
                else:
                    conn.apply((action,))
        metrics.GATEWAY_MESSAGES_FANNED_OUT.inc(delivered)

    def _targets(self, event: Event) -> Iterable[Connection]:
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
                return [c for conns in self._by_user.values() for c in conns]
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
        self.tell_presence(update.changes)
        if update.publish is None:
            return
        try:
            await self._bus.publish(routing.presence(self.presence.gateway_id), update.publish)
        except BusUnavailable as exc:
            # The next heartbeat carries the same news.
            log.warning("presence change not published", error=str(exc))
