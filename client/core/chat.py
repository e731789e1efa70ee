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

This class wires the parts together and routes the frames read to them:
:mod:`client.core.connection` (open, read, reconnect), :mod:`client.core.history` (first load,
sync cursor, older pages) and :mod:`client.core.sending` (one's own messages until stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from chase.logging import get_logger
from chase.schemas import (
    AckFrame,
    ChatMessage,
    ErrorFrame,
    HelloFrame,
    HistoryPageFrame,
    Limits,
    MessageFrame,
    PongFrame,
    PresenceFrame,
    SyncPageFrame,
)
from client.core.api import AuthSession
from client.core.backoff import BackoffPolicy, Sleep
from client.core.connection import Connection, read_frames
from client.core.conversations import ConversationId, ConversationStore, conversation_of
from client.core.errors import ClientError
from client.core.events import (
    ClientEvent,
    ClientState,
    Connected,
    EventHub,
    Listener,
    MessagesAdded,
    PresenceChanged,
    ServerError,
    Source,
    StateChanged,
)
from client.core.history import History
from client.core.outbox import Clock, Outbox, PendingMessage, local_now
from client.core.requests import PendingRequests
from client.core.sending import Outgoing, Sender
from client.core.transport import Connector, Link

__all__ = ["ChatClient", "Outgoing", "Sleep"]

log = get_logger(__name__)


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
        self._hub = EventHub()
        self._link: Link | None = None
        self._requests = PendingRequests()
        self._connection = Connection(connector, session.token, policy=self.policy, sleep=sleep,
                                      timeout=request_timeout, set_state=self._set_state, hub=self._hub)
        self._history = History(self.store, self._hub, add=self._add, requests=self._requests,
                                link=lambda: self._link, timeout=request_timeout, page_size=history_page)
        self._sender = Sender(self.outbox, self._hub, self.me, link=lambda: self._link, add=self._add,
                              policy=self.policy, sleep=sleep)
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    # --- events (see client.core.events for how a UI receives them) --------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event from now on; call the returned function to stop."""
        return self._hub.subscribe(listener)

    def events(self) -> AsyncIterator[ClientEvent]:
        """Every event from now on, as an async iterator."""
        return self._hub.events()

    def _set_state(self, state: ClientState, /, **details: object) -> None:
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
            link, hello = await self._connection.open()
        except ClientError as exc:
            self._set_state(ClientState.OFFLINE, reason=exc.message)
            raise
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(link, hello), name="chase-client")
        await asyncio.shield(self._ready)
        return hello

    def retry(self) -> None:
        """After GaveUp: start a new round of reconnect attempts now."""
        self._connection.retry()

    async def close(self) -> None:
        """Stop reconnecting and close the connection; unacknowledged messages are dropped."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._link is not None:
            await self._link.close()
            self._link = None
        if self.state is not ClientState.OFFLINE:
            self._set_state(ClientState.OFFLINE, reason="closed")

    async def _run(self, link: Link, hello: HelloFrame) -> None:
        try:
            await self._connection.keep(link, hello, self._serve)
        finally:
            self._link = None
            self._set_ready()

    def _set_ready(self) -> None:
        # start() returns once the first catch-up is over, or as soon as the client stops.
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    async def _serve(self, link: Link, hello: HelloFrame) -> None:
        """Serve one connection until it drops; raises SessionExpired on a 4401 close."""
        self._link = link
        self.limits = hello.limits
        self.online = set(hello.online_user_ids)
        self._set_state(ClientState.CONNECTED)
        self._hub.emit(Connected(hello))
        reader = asyncio.create_task(self._read(link), name="chase-client-reader")
        try:
            try:
                await self._history.catch_up()
                await self._sender.resend_all()
            except ClientError as exc:
                log.info("client.catch_up_interrupted", code=str(exc.code))
            self._set_ready()
            await reader
        finally:
            reader.cancel()
            self._link = None
            self._sender.link_lost()

    # --- reading ------------------------------------------------------------------------

    async def _read(self, link: Link) -> None:
        try:
            await read_frames(link, self._dispatch)
        finally:
            self._requests.fail_all()

    def _dispatch(self, frame: object) -> None:
        match frame:
            case MessageFrame(message=message):
                self._add([message], Source.LIVE)
            case AckFrame():
                self._sender.on_ack(frame)
            case PresenceFrame(user=user, online=online):
                (self.online.add if online else self.online.discard)(user.id)
                self._hub.emit(PresenceChanged(user.id, user.username, online))
            case HistoryPageFrame() | SyncPageFrame() | PongFrame():
                self._requests.resolve(frame.request_id, frame)
            case ErrorFrame():
                self._on_error(frame)
            case _:
                log.info("client.frame_ignored", type=type(frame).__name__)

    def _on_error(self, error: ErrorFrame) -> None:
        if self._requests.resolve(error.request_id, error):
            return
        if error.client_msg_id is None:
            log.info("client.server_error", code=error.code)
            self._hub.emit(ServerError(error.code, error.message))
            return
        self._sender.on_refused(error)

    def _add(self, messages: list[ChatMessage], source: Source, ack: AckFrame | None = None) -> list[ChatMessage]:
        """Store ``messages``, settle one's own pending ones, and emit the new ones per conversation."""
        added = self.store.add(messages)
        self._sender.settle(messages, ack)
        by_conversation: dict[ConversationId, list[ChatMessage]] = {}
        for message in added:
            by_conversation.setdefault(conversation_of(message, self.me.id), []).append(message)
        for conversation, batch in by_conversation.items():
            self._hub.emit(MessagesAdded(conversation, batch, source))
        return added

    # --- requests -----------------------------------------------------------------------

    async def send(self, body: str, to: int | None = None) -> Outgoing:
        """Queue a message for the room (``to`` None) or one user and send it if connected.

        It stays queued, and is resent after reconnects, until acknowledged; await
        ``Outgoing.acked`` to know. Meanwhile it is in :meth:`pending` (PendingAdded is emitted
        now). Raises MessageRejected for an empty or too long body.
        """
        return await self._sender.send(body, to, self.limits)

    def pending(self, conversation: ConversationId) -> list[PendingMessage]:
        """One's own messages in ``conversation`` not stored yet (or refused), oldest first.

        Show them after the conversation's stored messages; the events above keep a view current.
        """
        return self.outbox.messages(conversation)

    async def load_history(self, conversation: ConversationId, *, older: bool = False) -> list[ChatMessage]:
        """Fetch a page of ``conversation`` (the newest, or the one before the oldest known).

        Returns the messages that were new; also emitted as MessagesAdded + HistoryLoaded.
        Raises NotConnected when offline.
        """
        return await self._history.load(conversation, older=older)
