"""The WebSocket server over TLS: it authenticates a connection, then only feeds its
:class:`~services.gateway.session.ConnectionSession` and carries out the actions.

Connection life cycle:

1. TLS, then the WebSocket opening handshake carrying ``Authorization: Bearer <token>``.
2. The handshake is always accepted; the token is checked with the auth service right after.
   Missing, invalid, expired or revoked token: closed with **4401** "invalid or expired token".
   Auth service unreachable, or the gateway already holding CHASE_GATEWAY_MAX_CONNECTIONS
   connections: closed with **1013** (try again later). Clients read the close
   code and reason, which every WebSocket library exposes (an HTTP 401 body would not be).
3. The first frame is ``hello``; from then on client frames are served in order. Frames are
   UTF-8 JSON text; a binary frame is read as UTF-8 text, and refused (``invalid_frame``) if
   it is not.
4. The server closes with 4401 "session revoked" on logout, 4401 "session expired" when the
   session ends, 4008 when the client does not read its frames, 1008 on sustained flooding,
   1009 for a frame over the hard size cap (4 x max_frame_bytes; frames between the limit and
   the cap get a ``frame_too_large`` error instead), 1001 when the gateway shuts down.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from typing import Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from chase import metrics, routing
from chase.bus.port import Bus, BusUnavailable, RequestTimeout
from chase.clock import Clock, SystemClock
from chase.logging import bind, get_logger
from chase.schemas import (
    HistoryQuery,
    MessageSubmitted,
    PongFrame,
    RoomCommand,
    RoomList,
    RoomMembersQuery,
    RoomsQuery,
)
from chase.tls import server_context
from services.auth.client import AuthClientError, AuthRejected, SessionInfo
from services.gateway.availability import StoreAvailability
from services.gateway.errors import (
    REASON_AUTH_UNAVAILABLE,
    REASON_GATEWAY_FULL,
    REASON_INVALID_TOKEN,
    REASON_SHUTDOWN,
    REASON_TOO_MANY_CONNECTIONS,
    CloseCode,
    ErrorCode,
)
from services.gateway.fanout import Connection, FanOut, TooManyConnections
from services.gateway.presence import PresenceTracker
from services.gateway.session import Action, Close, ConnectionSession, Publish, Query, Send
from services.gateway.settings import GatewaySettings
from services.gateway.submissions import SubmissionPublisher

log = get_logger("chase.gateway")

#: How long a close handshake may take before the socket is simply dropped.
CLOSE_TIMEOUT = 5.0
#: How often unanswered sends are checked against CHASE_GATEWAY_SEND_TIMEOUT_SECONDS.
SEND_SWEEP_SECONDS = 0.5
#: Token checks in flight to the auth service at once. In a reconnect storm every client
#: arrives together; asking all at once would run into the auth service's own bound on requests
#: in progress (503) and the client's connection pool, and refuse clients (1013) that a short
#: wait in line would have let in. Well below both.
AUTH_CHECKS_IN_FLIGHT = 32
#: How long a connection may wait for one of those: in a storm of thousands, the line moves at
#: the auth service's pace. Refusing sooner only brings the client back (1013) for a second TLS
#: handshake and a second place in the same line.
AUTH_QUEUE_SECONDS = 30.0
#: How long a user's broker binding outlives their last connection (see FanOut): clients
#: reconnect within seconds after a blip, and then cost the broker nothing.
UNBIND_AFTER_SECONDS = 30.0
#: Connections the kernel queues for accept() (capped by net.core.somaxconn). asyncio's
#: default of 100 drops SYNs in a reconnect storm: those clients wait for TCP's retransmission
#: (1 s, 3 s, 7 s...) or give up. Accepting costs little; the handshake time-out and
#: max_connections bound what follows.
LISTEN_BACKLOG = 4096


class TokenChecker(Protocol):
    """What the gateway needs of the auth service (``services.auth.client.AuthClient``)."""

    async def check_token(self, token: str) -> SessionInfo: ...


class _WebSocketSink:
    """A connection's frame sink, written synchronously as ``websockets.broadcast`` does: the
    frames go through the connection's sans-I/O protocol (framing, compression if negotiated)
    and out in **one** transport write. A close that cannot complete (client not reading)
    aborts."""

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws

    def write(self, frames: list[bytes]) -> None:
        ws = self._ws
        protocol = ws.protocol
        if protocol.state is not State.OPEN:
            return  # closing: websockets finishes the close handshake by itself
        for data in frames:
            protocol.send_text(data)
        chunks = protocol.data_to_send()
        if b"" in chunks:  # pragma: no cover - an end-of-stream marker: let websockets handle it
            ws.send_data()
        else:
            ws.transport.write(b"".join(chunks))

    def backlog(self) -> int:
        return self._ws.transport.get_write_buffer_size()

    async def close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self._ws.close(code, reason), CLOSE_TIMEOUT)
        except TimeoutError:
            self._ws.transport.abort()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def frame_kind(actions: list[Action]) -> str:
    """What a client frame turned out to be, read from the actions it produced (the
    ``type`` label of ``chase_gateway_frames_received``)."""
    for action in actions:
        if isinstance(action, Publish):
            return "room" if isinstance(action.event, RoomCommand) else "send"
        if isinstance(action, Query):
            if isinstance(action.request, RoomsQuery | RoomMembersQuery):
                return "rooms"
            return "history" if isinstance(action.request, HistoryQuery) else "sync"
        if isinstance(action, Send) and isinstance(action.frame, PongFrame):
            return "ping"
    return "refused"


class GatewayServer:
    """One gateway: ``await start()``, serve, then ``await stop()``. The caller owns the bus."""

    def __init__(
        self, settings: GatewaySettings, *, bus: Bus, auth: TokenChecker, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self._bus = bus
        self._auth = auth
        self._clock = clock or SystemClock()
        presence = PresenceTracker(settings.gateway_id, self._clock, settings.presence_ttl_seconds)
        self.store = StoreAvailability(self._clock)
        self.fanout = FanOut(
            bus,
            presence,
            store=self.store,
            max_connections_per_user=settings.max_connections_per_user,
            room_loader=self._rooms_of,
            unbind_after=UNBIND_AFTER_SECONDS,
            presence_window=settings.presence_window_seconds,
        )
        #: Sends of all connections go out in groups, one per turn of the event loop.
        self._submissions = SubmissionPublisher(bus)
        self._server: Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        # Queries run beside the read loop, so a slow history page never holds up sends.
        self._queries: set[asyncio.Task[None]] = set()
        self._auth_slots = asyncio.Semaphore(AUTH_CHECKS_IN_FLIGHT)
        #: Connections past the opening handshake and not finished (authenticating included).
        self._open = 0

    @property
    def port(self) -> int:
        """The port listened on (useful with port 0)."""
        assert self._server is not None, "start() first"
        return self._server.sockets[0].getsockname()[1]

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        """Consume the fan-out queue and listen; raises BusUnavailable, FileNotFoundError (TLS)
        or OSError (port taken). Call :meth:`stop` afterwards."""
        s = self.settings
        context = ssl_context or server_context(s.server_cert_path, s.server_key_path)
        await self.fanout.start()
        self._server = await serve(
            self._handle,
            s.host,
            s.port,
            ssl=context,
            # Bounds the TLS handshake too (websockets passes it on as ssl_handshake_timeout).
            open_timeout=s.handshake_timeout_seconds,
            max_size=4 * s.max_frame_bytes,
            close_timeout=CLOSE_TIMEOUT,
            server_header=None,
            backlog=LISTEN_BACKLOG,
            # No permessage-deflate: websockets' clients offer it by default, and accepting it
            # gives every connection its own zlib streams (an idle connection of ChaSe's client
            # held 127 KiB instead of 73) and deflates every fanned-out frame once per
            # connection instead of writing the same bytes to all (docs/benchmarks.md).
            compression=None,
        )
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat_forever())
        self._sweeper = asyncio.get_running_loop().create_task(self._expire_sends_forever())
        log.info("gateway listening", url=f"wss://{s.host}:{self.port}", gateway_id=s.gateway_id)

    async def stop(self) -> None:
        """Close every client with 1001, then leave the bus (the exclusive queue goes with it)."""
        if self._server is not None:
            self._server.close(code=CloseCode.GOING_AWAY, reason=REASON_SHUTDOWN)
            await self._server.wait_closed()
            self._server = None
        for task in (self._heartbeat, self._sweeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._heartbeat = self._sweeper = None
        for task in list(self._queries):
            task.cancel()
        await asyncio.gather(*self._queries, return_exceptions=True)
        await self._submissions.stop()
        await self.fanout.stop()
        log.info("gateway stopped", gateway_id=self.settings.gateway_id,
                 submission_groups=self._submissions.groups_published,
                 sends_published=self._submissions.sends_published)

    async def _rooms_of(self, user_id: int) -> RoomList:
        """The rooms of a connecting user, from the history service (raises when unanswered)."""
        reply = await self._bus.request(
            routing.HISTORY_RPC, RoomsQuery(viewer_id=user_id), timeout=self.settings.query_timeout_seconds
        )
        if not isinstance(reply, RoomList):
            raise BusUnavailable(f"no room list: {reply.type}")
        return reply

    async def _expire_sends_forever(self) -> None:
        # Bounds every send's wait for an answer (see ConnectionSession.expire_pending).
        while True:
            await asyncio.sleep(SEND_SWEEP_SECONDS)
            for conn in self.fanout.connections():
                conn.apply(conn.session.expire_pending())

    async def _beat_forever(self) -> None:
        while True:
            await self.fanout.beat()
            await asyncio.sleep(self.settings.heartbeat_seconds)

    # --- one connection -----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        # Every log line of this connection's task (and its children) names it.
        bind(connection_id=ws.id.hex)
        if self._open >= self.settings.max_connections:
            metrics.GATEWAY_CONNECTIONS.labels("gateway_full").inc()
            await ws.close(CloseCode.TRY_AGAIN_LATER, REASON_GATEWAY_FULL)
            return
        self._open += 1
        try:
            await self._serve(ws)
        finally:
            self._open -= 1

    async def _serve(self, ws: ServerConnection) -> None:
        info = await self._authenticate(ws)
        if info is None:
            return
        session = ConnectionSession(
            info.user,
            info.session_id,
            self.settings.limits,
            self._clock,
            store=self.store,
            send_timeout=self.settings.send_timeout_seconds,
            rooms=self.fanout.rooms,
        )
        conn = Connection(session, _WebSocketSink(ws), self.settings.outbox_size, self.settings.outbox_max_bytes,
                          flusher=self.fanout.flusher)
        conn.start()
        try:
            await self.fanout.add(conn)
        except TooManyConnections:
            metrics.GATEWAY_CONNECTIONS.labels("too_many").inc()
            conn.close_soon(CloseCode.TOO_MANY_CONNECTIONS, REASON_TOO_MANY_CONNECTIONS)
            await conn.finish()
            return
        except BusUnavailable as exc:
            log.warning("connection refused, bus unavailable", user_id=info.user.id, error=str(exc))
            metrics.GATEWAY_CONNECTIONS.labels("bus_unavailable").inc()
            conn.close_soon(CloseCode.TRY_AGAIN_LATER, "messaging unavailable, try again later")
            await conn.finish()
            return
        metrics.GATEWAY_CONNECTIONS.labels("accepted").inc()
        metrics.GATEWAY_CONNECTIONS_OPEN.inc()
        expiry = self._expire_at(conn, info.expires_at)
        log.info("client connected", user_id=info.user.id, session_id=info.session_id)
        try:
            await self._read_loop(ws, conn)
        finally:
            metrics.GATEWAY_CONNECTIONS_OPEN.dec()
            expiry.cancel()
            await self.fanout.remove(conn)
            await conn.finish()
            code = conn.close_code or ws.close_code
            log.info("client disconnected", user_id=info.user.id, session_id=info.session_id,
                     code=int(code) if code is not None else None)

    async def _authenticate(self, ws: ServerConnection) -> SessionInfo | None:
        """The session behind the handshake's token, or None after closing the connection."""
        token = bearer_token(ws.request.headers.get("Authorization") if ws.request else None)
        if token is None:
            metrics.GATEWAY_CONNECTIONS.labels("refused_token").inc()
            await ws.close(CloseCode.UNAUTHORIZED, REASON_INVALID_TOKEN)
            return None
        try:
            # The line is bounded by max_connections (each one waiting holds a place); the
            # wait by AUTH_QUEUE_SECONDS; the check itself by the client's time-out.
            async with asyncio.timeout(AUTH_QUEUE_SECONDS):
                await self._auth_slots.acquire()
            try:
                return await self._auth.check_token(token)
            finally:
                self._auth_slots.release()
        except TimeoutError:
            log.warning("token check not started in time: too many connections arriving at once")
            metrics.GATEWAY_CONNECTIONS.labels("auth_unavailable").inc()
            await ws.close(CloseCode.TRY_AGAIN_LATER, REASON_AUTH_UNAVAILABLE)
        except AuthRejected as exc:
            if exc.status in (401, 403):
                metrics.GATEWAY_CONNECTIONS.labels("refused_token").inc()
                await ws.close(CloseCode.UNAUTHORIZED, REASON_INVALID_TOKEN)
                return None
            # Any other refusal (408 when the request crawled in, 429, 413) says nothing about
            # the token: "invalid token" would make the client log out. Under a reconnect
            # storm the auth service answered some checks 4xx this way.
            log.warning("token check refused", status=exc.status, code=exc.code)
            metrics.GATEWAY_CONNECTIONS.labels("auth_unavailable").inc()
            await ws.close(CloseCode.TRY_AGAIN_LATER, REASON_AUTH_UNAVAILABLE)
        except AuthClientError as exc:
            log.warning("token check failed", error=str(exc))
            metrics.GATEWAY_CONNECTIONS.labels("auth_unavailable").inc()
            await ws.close(CloseCode.TRY_AGAIN_LATER, REASON_AUTH_UNAVAILABLE)
        return None

    def _expire_at(self, conn: Connection, expires_at: datetime) -> asyncio.TimerHandle:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        delay = max(0.0, (expires_at - self._clock.now()).total_seconds())
        return asyncio.get_running_loop().call_later(
            delay, conn.close_soon, CloseCode.UNAUTHORIZED, "session expired"
        )

    async def _read_loop(self, ws: ServerConnection, conn: Connection) -> None:
        try:
            async for data in ws:
                actions = conn.session.receive_text(data)
                metrics.GATEWAY_FRAMES_RECEIVED.labels(frame_kind(actions)).inc()
                for action in actions:
                    await self._execute(conn, action)
                if conn.closing:
                    return
        except ConnectionClosed:
            pass

    async def _execute(self, conn: Connection, action: Send | Publish | Query | Close) -> None:
        if isinstance(action, Publish):
            try:
                if isinstance(action.event, MessageSubmitted) and action.routing_key == routing.MESSAGE_SUBMITTED:
                    # Awaits this send's own confirm (with the others of its group): the read
                    # loop reads the connection's next frame only after it.
                    await self._submissions.publish(action.event)
                else:
                    await self._bus.publish(action.routing_key, action.event)
            except BusUnavailable as exc:
                log.warning("send refused, bus unavailable", user_id=conn.user_id, error=str(exc))
                metrics.GATEWAY_PUBLISH_FAILURES.inc()
                conn.apply(conn.session.publish_failed(action.client_msg_id))
        elif isinstance(action, Query):
            task = asyncio.get_running_loop().create_task(self._query(conn, action))
            self._queries.add(task)
            task.add_done_callback(self._queries.discard)
        else:
            conn.apply([action])

    async def _query(self, conn: Connection, query: Query) -> None:
        try:
            reply = await self._bus.request(
                routing.HISTORY_RPC, query.request, timeout=self.settings.query_timeout_seconds
            )
        except (RequestTimeout, BusUnavailable) as exc:
            log.warning("query failed", user_id=conn.user_id, error=str(exc))
            conn.apply(conn.session.query_failed(query, ErrorCode.UNAVAILABLE, "history is unavailable, try again"))
        else:
            conn.apply(conn.session.query_replied(query, reply))
