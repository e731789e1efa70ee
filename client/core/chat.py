"""The chat client: one logged-in user's connection to the gateway, kept alive.

Life cycle: :meth:`ChatClient.start` opens the first connection and loads the public room's
latest page plus everything newer (so history is there at login), then returns. From then on
a background task reads frames, and when the connection drops it reconnects with the
:class:`~client.core.backoff.BackoffPolicy`; after each reconnect it syncs what was missed and
resends every unacknowledged message with its original ``client_msg_id``. After the last
attempt it goes OFFLINE and emits :class:`GaveUp` until :meth:`retry`. A refused token ends it
with :class:`SessionEnded`.

One's own messages are shown before they are stored: :meth:`ChatClient.pending` lists them per
conversation, and PendingAdded / PendingChanged / PendingStored say when that list changes. The
stored message replaces its pending entry when it first arrives, whether by ack, sync or live.

The sync cursor only advances from sync pages (and the first history page), never from live
messages: live delivery can miss a message without the connection noticing (one committed
while the gateway was still binding this user's routing keys, one dropped from a full gateway
queue), and a cursor taken from a later live message would skip it for good. Starting the
next sync from the last *synced* id re-fetches a little, and the store drops the duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import ValidationError

from chase.logging import get_logger
from chase.schemas import (
    AckFrame,
    ChatMessage,
    ErrorFrame,
    HelloFrame,
    HistoryFrame,
    HistoryPageFrame,
    Limits,
    MessageFrame,
    PongFrame,
    PresenceFrame,
    SendFrame,
    SyncFrame,
    SyncPageFrame,
    decode_server_frame,
    encode,
)
from client.core.api import AuthSession
from client.core.backoff import BackoffPolicy
from client.core.conversations import PUBLIC, ConversationId, ConversationStore, conversation_of
from client.core.errors import (
    ClientError,
    MessageRejected,
    NotConnected,
    ProtocolFailure,
    ServerUnreachable,
    SessionExpired,
)
from client.core.events import (
    ClientEvent,
    ClientState,
    Connected,
    EventHub,
    GaveUp,
    HistoryLoaded,
    Listener,
    MessageAcked,
    MessagesAdded,
    PendingAdded,
    PendingChanged,
    PendingStored,
    PresenceChanged,
    SendFailed,
    ServerError,
    SessionEnded,
    Source,
    StateChanged,
)
from client.core.outbox import Clock, Outbox, PendingMessage, PendingState, local_now
from client.core.requests import PendingRequests, new_request_id
from client.core.transport import CLOSE_UNAUTHORIZED, Connector, Link, LinkClosed

log = get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True)
class Outgoing:
    """A message handed to the client. Await ``acked`` for its AckFrame (or MessageRejected).

    When the stored message comes before any ack (a sync after a reconnect), ``acked`` gets an
    AckFrame made from it, since nothing is resent once it is known to be stored.
    """

    client_msg_id: str
    acked: asyncio.Future[AckFrame]


class ChatClient:
    def __init__(self, connector: Connector, session: AuthSession, *, policy: BackoffPolicy | None = None,
                 sleep: Sleep = asyncio.sleep, clock: Clock = local_now, request_timeout: float = 15.0,
                 history_page: int = 50) -> None:
        self.me = session.user
        self.store = ConversationStore(session.user.id)
        self.outbox = Outbox(clock)
        self.state = ClientState.OFFLINE
        self.limits: Limits | None = None
        self.online: set[int] = set()
        self.policy = policy or BackoffPolicy()
        self._connector = connector
        self._token = session.token
        self._sleep = sleep
        self._request_timeout = request_timeout
        self._history_page = history_page
        self._hub = EventHub()
        self._link: Link | None = None
        self._requests = PendingRequests()
        self._ack_waiters: dict[str, asyncio.Future[AckFrame]] = {}
        self._resend_attempts: dict[str, int] = {}
        self._cursor = 0
        self._bootstrapped = False
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._retry = asyncio.Event()
        self._closing = False

    # --- events (see client.core.events for how a UI receives them) --------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event from now on; call the returned function to stop."""
        return self._hub.subscribe(listener)

    def events(self) -> AsyncIterator[ClientEvent]:
        """Every event from now on, as an async iterator."""
        return self._hub.events()

    def _set_state(self, state: ClientState, **details: object) -> None:
        self.state = state
        self._hub.emit(StateChanged(state, **details))  # type: ignore[arg-type]

    # --- life cycle ---------------------------------------------------------------------

    async def start(self) -> HelloFrame:
        """Connect, load the latest history, and keep connected in the background.

        Raises SessionExpired, CertificateNotTrusted or ServerUnreachable when the first
        connection fails (nothing keeps running then). The caller must :meth:`close` later.
        """
        self._set_state(ClientState.CONNECTING)
        try:
            link, hello = await self._open()
        except ClientError as exc:
            self._set_state(ClientState.OFFLINE, reason=exc.message)
            raise
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(link, hello), name="chase-client")
        await asyncio.shield(self._ready)
        return hello

    def retry(self) -> None:
        """After GaveUp: start a new round of reconnect attempts now."""
        self._retry.set()

    async def close(self) -> None:
        """Stop reconnecting and close the connection; unacknowledged messages are dropped."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._link is not None:
            await self._link.close()
            self._link = None
        if self.state is not ClientState.OFFLINE:
            self._set_state(ClientState.OFFLINE, reason="closed")

    async def _open(self) -> tuple[Link, HelloFrame]:
        link = await self._connector.connect(self._token)
        refusal = ""
        try:
            while True:
                frame = self._decode(await asyncio.wait_for(link.recv(), self._request_timeout))
                if isinstance(frame, HelloFrame):
                    return link, frame
                if isinstance(frame, ErrorFrame):
                    refusal = frame.message
        except LinkClosed as closed:
            if closed.code == CLOSE_UNAUTHORIZED:
                raise SessionExpired(refusal or closed.reason or "the session has expired") from None
            raise ServerUnreachable(refusal or f"the gateway closed the connection ({closed.code})") from None
        except TimeoutError:
            await link.close()
            raise ServerUnreachable("the gateway did not greet the client in time") from None

    async def _run(self, link: Link, hello: HelloFrame) -> None:
        try:
            while True:
                await self._connection(link, hello)
                self._set_state(ClientState.RECONNECTING, reason="connection lost")
                link, hello = await self._reconnect()
        except SessionExpired as exc:
            self._set_state(ClientState.OFFLINE, reason=exc.message)
            self._hub.emit(SessionEnded(exc.message))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never die silently: say so, go offline
            log.exception("client.crashed")
            self._set_state(ClientState.OFFLINE, reason=f"internal error: {exc}")
        finally:
            self._link = None
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)

    async def _reconnect(self) -> tuple[Link, HelloFrame]:
        attempt, reason = 0, "connection lost"
        while True:
            attempt += 1
            if self.policy.exhausted(attempt):
                self._set_state(ClientState.OFFLINE, reason=reason)
                self._hub.emit(GaveUp(attempt - 1, reason))
                self._retry.clear()
                await self._retry.wait()
                self._retry.clear()
                attempt, delay = 1, 0.0
            else:
                delay = self.policy.delay(attempt)
            self._set_state(ClientState.RECONNECTING, attempt=attempt,
                            max_attempts=self.policy.max_attempts, delay=delay, reason=reason)
            if delay:
                await self._sleep(delay)
            try:
                return await self._open()
            except SessionExpired:
                raise
            except ClientError as exc:
                reason = exc.message
                log.info("client.reconnect_failed", attempt=attempt, code=str(exc.code))

    async def _connection(self, link: Link, hello: HelloFrame) -> None:
        """Serve one connection until it drops; raises SessionExpired on a 4401 close."""
        self._link = link
        self.limits = hello.limits
        self.online = set(hello.online_user_ids)
        self._set_state(ClientState.CONNECTED)
        self._hub.emit(Connected(hello))
        reader = asyncio.create_task(self._read(link), name="chase-client-reader")
        try:
            try:
                await self._catch_up()
            except ClientError as exc:
                log.info("client.catch_up_interrupted", code=str(exc.code))
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            await reader
        finally:
            reader.cancel()
            self._link = None
            for frame in self.outbox.pending():
                self._mark(frame.client_msg_id, PendingState.WAITING)

    async def _catch_up(self) -> None:
        if not self._bootstrapped:
            page = await self._history_request(PUBLIC, None, self._history_page)
            self._add(page.messages, Source.HISTORY)
            self.store.mark_history(PUBLIC, has_more=page.has_more)
            self._hub.emit(HistoryLoaded(PUBLIC, page.has_more))
            self._cursor = max((m.id for m in page.messages), default=0)
            self._bootstrapped = True
            await self._sync(Source.HISTORY)
        else:
            await self._sync(Source.SYNC)
        for frame in self.outbox.pending():
            await self._send_frame(frame)

    async def _sync(self, source: Source) -> None:
        while True:
            page = await self._request(SyncFrame(request_id=new_request_id(), after_id=self._cursor), SyncPageFrame)
            self._add(page.messages, source)
            self._cursor = max([self._cursor, *(m.id for m in page.messages)])
            if not page.has_more or not page.messages:
                return

    # --- reading ------------------------------------------------------------------------

    async def _read(self, link: Link) -> None:
        try:
            while True:
                try:
                    raw = await link.recv()
                except LinkClosed as closed:
                    if closed.code == CLOSE_UNAUTHORIZED:
                        raise SessionExpired(closed.reason or "the session has ended: please log in again") from None
                    log.info("client.link_closed", code=closed.code)
                    return
                frame = self._decode(raw)
                if frame is not None:
                    self._dispatch(frame)
        finally:
            self._requests.fail_all()

    @staticmethod
    def _decode(raw: str) -> object | None:
        try:
            return decode_server_frame(raw)
        except ValidationError as exc:
            # A newer server may send frames this client does not know: skip them, never crash.
            log.warning("client.unknown_frame", error_count=exc.error_count(), size=len(raw))
            return None

    def _dispatch(self, frame: object) -> None:
        match frame:
            case MessageFrame(message=message):
                self._add([message], Source.LIVE)
            case AckFrame():
                self._on_ack(frame)
            case PresenceFrame(user=user, online=online):
                (self.online.add if online else self.online.discard)(user.id)
                self._hub.emit(PresenceChanged(user.id, user.username, online))
            case HistoryPageFrame() | SyncPageFrame() | PongFrame():
                self._requests.resolve(frame.request_id, frame)
            case ErrorFrame():
                self._on_error(frame)
            case _:
                log.info("client.frame_ignored", type=type(frame).__name__)

    def _add(self, messages: list[ChatMessage], source: Source, ack: AckFrame | None = None) -> list[ChatMessage]:
        added = self.store.add(messages)
        for message in messages:
            if message.sender.id == self.me.id and self.outbox.entry(message.client_msg_id) is not None:
                self._settle(message, ack)
        by_conversation: dict[ConversationId, list[ChatMessage]] = {}
        for message in added:
            by_conversation.setdefault(conversation_of(message, self.me.id), []).append(message)
        for conversation, batch in by_conversation.items():
            self._hub.emit(MessagesAdded(conversation, batch, source))
        return added

    def _settle(self, message: ChatMessage, ack: AckFrame | None) -> None:
        """One's own pending ``message`` is stored: it replaces the pending entry, never resent."""
        pending = self.outbox.drop(message.client_msg_id)
        if pending is None:
            return
        self._resend_attempts.pop(message.client_msg_id, None)
        self._hub.emit(PendingStored(pending.client_msg_id, pending.conversation, message))
        self._resolve(message.client_msg_id, ack or AckFrame(
            client_msg_id=message.client_msg_id, message_id=message.id, created_at=message.created_at))

    def _resolve(self, client_msg_id: str, outcome: AckFrame | MessageRejected) -> None:
        waiter = self._ack_waiters.pop(client_msg_id, None)
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, AckFrame):
            waiter.set_result(outcome)
        else:
            waiter.set_exception(outcome)

    def _mark(self, client_msg_id: str, state: PendingState, reason: str = "") -> None:
        changed = self.outbox.mark(client_msg_id, state, reason)
        if changed is not None:
            self._hub.emit(PendingChanged(changed))

    def _on_ack(self, ack: AckFrame) -> None:
        pending = self.outbox.entry(ack.client_msg_id)
        if pending is not None:
            self._add([ChatMessage(id=ack.message_id, sender=self.me, recipient_id=pending.conversation,
                                   body=pending.body, created_at=ack.created_at,
                                   client_msg_id=ack.client_msg_id)], Source.OWN, ack)
        self._hub.emit(MessageAcked(ack.client_msg_id, ack.message_id, ack.duplicate))
        self._resolve(ack.client_msg_id, ack)

    def _on_error(self, error: ErrorFrame) -> None:
        if self._requests.resolve(error.request_id, error):
            return
        if error.client_msg_id is None:
            log.info("client.server_error", code=error.code)
            self._hub.emit(ServerError(error.code, error.message))
            return
        self._hub.emit(SendFailed(error.client_msg_id, error.code, error.message, error.retryable))
        if error.retryable and error.client_msg_id in self.outbox:
            self._mark(error.client_msg_id, PendingState.RETRYING, error.message)
            asyncio.get_running_loop().create_task(self._resend_later(error.client_msg_id))
            return
        # Kept (FAILED) so the user sees what was not sent and why; never resent.
        self._mark(error.client_msg_id, PendingState.FAILED, error.message)
        self._resolve(error.client_msg_id, MessageRejected(error.message))

    async def _resend_later(self, client_msg_id: str) -> None:
        attempt = self._resend_attempts.get(client_msg_id, 0) + 1
        self._resend_attempts[client_msg_id] = attempt
        await self._sleep(self.policy.delay(min(attempt, self.policy.max_attempts)))
        frame = self.outbox.get(client_msg_id)
        if frame is not None and self._link is not None:
            await self._send_frame(frame)

    # --- requests -----------------------------------------------------------------------

    async def send(self, body: str, to: int | None = None) -> Outgoing:
        """Queue a message for the room (``to`` None) or one user and send it if connected.

        It stays queued, and is resent after reconnects, until acknowledged; await
        ``Outgoing.acked`` to know. Meanwhile it is in :meth:`pending` (PendingAdded is emitted
        now). Raises MessageRejected for an empty or too long body.
        """
        if not body.strip():
            raise MessageRejected("the message is empty")
        if self.limits is not None and len(body) > self.limits.max_body_chars:
            raise MessageRejected(
                f"the message has {len(body)} characters; the limit is {self.limits.max_body_chars}"
            )
        pending = self.outbox.add(body, to, state=PendingState.WAITING if self._link is None else PendingState.SENDING)
        waiter: asyncio.Future[AckFrame] = asyncio.get_running_loop().create_future()
        # Nobody may await a rejection; retrieve it so asyncio does not warn about it.
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._ack_waiters[pending.client_msg_id] = waiter
        self._hub.emit(PendingAdded(pending))
        await self._send_frame(pending.frame)
        return Outgoing(pending.client_msg_id, waiter)

    def pending(self, conversation: ConversationId) -> list[PendingMessage]:
        """One's own messages in ``conversation`` not stored yet (or refused), oldest first.

        Show them after the conversation's stored messages; the events above keep a view current.
        """
        return self.outbox.messages(conversation)

    async def _send_frame(self, frame: SendFrame) -> None:
        link = self._link
        if link is None:
            self._mark(frame.client_msg_id, PendingState.WAITING)  # sent after the next reconnect
            return
        self._mark(frame.client_msg_id, PendingState.SENDING)
        try:
            await link.send(encode(frame))
        except LinkClosed:
            log.info("client.send_on_closed_link")
            self._mark(frame.client_msg_id, PendingState.WAITING)

    async def load_history(self, conversation: ConversationId, *, older: bool = False) -> list[ChatMessage]:
        """Fetch a page of ``conversation`` (the newest, or the one before the oldest known).

        Returns the messages that were new; also emitted as MessagesAdded + HistoryLoaded.
        Raises NotConnected when offline.
        """
        before_id = self.store.oldest_id(conversation) if older else None
        page = await self._history_request(conversation, before_id, self._history_page)
        added = self._add(page.messages, Source.HISTORY)
        oldest = min((m.id for m in page.messages), default=None)
        if before_id is not None or oldest is None or oldest == self.store.oldest_id(conversation):
            self.store.mark_history(conversation, has_more=page.has_more)
        self._hub.emit(HistoryLoaded(conversation, self.store.has_more_before(conversation)))
        return added

    async def _history_request(self, conversation: ConversationId, before_id: int | None,
                               limit: int) -> HistoryPageFrame:
        frame = HistoryFrame(request_id=new_request_id(), with_user_id=conversation, before_id=before_id, limit=limit)
        return await self._request(frame, HistoryPageFrame)

    async def _request(self, frame: HistoryFrame | SyncFrame, expect: type[T]) -> T:
        link = self._link
        if link is None:
            raise NotConnected("not connected to the server")
        assert frame.request_id is not None
        future = self._requests.open(frame.request_id)
        try:
            await link.send(encode(frame))
            reply = await asyncio.wait_for(future, self._request_timeout)
        except LinkClosed:
            raise NotConnected("the connection dropped") from None
        except TimeoutError:
            raise ProtocolFailure(f"no answer to {frame.type} in time") from None
        finally:
            self._requests.close(frame.request_id)
        if isinstance(reply, ErrorFrame):
            raise ClientError(reply.message)
        if not isinstance(reply, expect):
            raise ProtocolFailure(f"unexpected answer to {frame.type}")
        return reply
