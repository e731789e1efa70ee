"""The chat client: one logged-in user's connection to the gateway, kept alive.

Life cycle: :meth:`ChatClient.start` opens the first connection and catches up (the public
room's latest page plus everything newer, so history is there at login), then returns. From
then on a background task reads frames, and when the connection drops it reconnects with the
:class:`~client.core.backoff.BackoffPolicy`: a few fast attempts (RECONNECTING), then slow ones
for ever (OFFLINE, with ``next_attempt_at``). Sending, or :meth:`retry`, tries at once. On each
link two things run side by side: catching up (sync, retried on failure; also at once when a
live message shows a gap or the gateway sends ``resync``) and sending the outbox strictly in
order (see :mod:`client.core.sending`). A refused token ends it with :class:`SessionEnded`.

One's own messages are shown before they are stored: :meth:`ChatClient.pending` lists them per
conversation, and PendingAdded / PendingChanged / PendingStored say when that list changes. The
stored message replaces its pending entry when it first arrives, whether by ack, sync or live.
With a :class:`~client.core.local.LocalState` the unsent ones and the sync cursor are kept on
disk: they survive logout and restarts, and are sent at the next login under the same ids.

This class wires the parts together and routes the frames read to them:
:mod:`client.core.connection` (open, read, reconnect), :mod:`client.core.history` (first load,
sync cursor, gaps, older pages) and :mod:`client.core.sending` (one's own messages until stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING

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
    ResyncFrame,
    RoomFrame,
    RoomListFrame,
    RoomMemberListFrame,
    RoomMembersFrame,
    RoomRequestFrame,
    RoomsFrame,
    ServerFrame,
    SyncPageFrame,
    encode,
)
from client.core.api import AuthSession
from client.core.backoff import BackoffPolicy, Sleep
from client.core.connection import Connection, read_frames
from client.core.conversations import ConversationId, ConversationStore, Room, conversation_of
from client.core.errors import ClientError, NotConnected, ProtocolFailure
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
from client.core.local import LocalState, SavedMessage
from client.core.outbox import Clock, Outbox, PendingMessage, PendingState, local_now, new_client_msg_id
from client.core.pacing import PacedLink, Pacer
from client.core.requests import PendingRequests
from client.core.sending import RATE_LIMITED, Outgoing, Sender, check_body
from client.core.transport import Connector, Link, LinkClosed

if TYPE_CHECKING:
    from client.core.e2ee.manager import E2EE

__all__ = ["ChatClient", "Outgoing", "Sleep"]

#: What :meth:`ChatClient.request` sends.
RoomRequest = RoomRequestFrame | RoomsFrame | RoomMembersFrame

log = get_logger(__name__)


class ChatClient:
    def __init__(self, connector: Connector, session: AuthSession, *, policy: BackoffPolicy | None = None,
                 sleep: Sleep = asyncio.sleep, clock: Clock = local_now, request_timeout: float = 15.0,
                 history_page: int = 50, local: LocalState | None = None, e2ee: E2EE | None = None) -> None:
        self.me = session.user
        #: End-to-end encryption of private messages (on for every 1:1 conversation when set).
        self.e2ee = e2ee
        self.store = ConversationStore(session.user.id)
        self._local = local
        self.outbox = Outbox(clock, on_change=self._save_outbox if local is not None else None)
        self.state = ClientState.OFFLINE
        self.limits: Limits | None = None
        self.online: set[int] = set()
        self.policy = policy or BackoffPolicy()
        self._hub = EventHub()
        self._link: Link | None = None
        self._requests = PendingRequests()
        self._connection = Connection(connector, session.token, policy=self.policy, sleep=sleep,
                                      timeout=request_timeout, set_state=self._set_state, hub=self._hub,
                                      clock=clock)
        self._history = History(self.store, self._hub, add=self._add, requests=self._requests,
                                link=lambda: self._link, timeout=request_timeout, page_size=history_page,
                                policy=self.policy, sleep=sleep, cursor=local.cursor if local else None,
                                on_cursor=self._save_cursor if local is not None else None)
        self._sender = Sender(self.outbox, self._hub, self.me, link=lambda: self._link, add=self._add,
                              policy=self.policy, sleep=sleep)
        self._request_timeout = request_timeout
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
        self._restore_outbox()
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
        """While not connected: try now, then a new round of fast attempts."""
        self._connection.retry()

    @property
    def next_attempt_at(self) -> datetime | None:
        """While not connected: the local time of the next reconnect attempt."""
        return self._connection.next_attempt_at

    @property
    def unsent(self) -> int:
        """How many of one's messages are not stored yet (and not refused for good)."""
        return len(self.outbox)

    @property
    def keeps_unsent(self) -> bool:
        """True when unsent messages are kept on disk at :meth:`close` (sent at the next login)."""
        return self._local is not None

    def discard_unsent(self) -> int:
        """Forget every unsent message, also on disk (the user chose to); returns how many."""
        entries = self.outbox.unacked()
        for entry in entries:
            self._sender.discard(entry.client_msg_id)
        return len(entries)

    async def close(self) -> None:
        """Stop reconnecting and close the connection.

        Unacknowledged messages stay on disk when the client keeps a local state (they are sent
        at the next login); otherwise they are dropped: tell the user first (:attr:`unsent`).
        """
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._link is not None:
            await self._link.close()
            self._link = None
        if self.state is not ClientState.OFFLINE:
            self._set_state(ClientState.OFFLINE, reason="closed")
        if self._local is not None:
            self._local.release()

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
        self._link = PacedLink(link, Pacer.for_limits(hello.limits))
        self.limits = hello.limits
        self.online = set(hello.online_user_ids)
        self._set_state(ClientState.CONNECTED)
        self._hub.emit(Connected(hello))
        reader = asyncio.create_task(self._read(link), name="chase-client-reader")
        # Catching up and sending are independent: a failed sync does not hold the outbox back.
        tried = asyncio.Event()

        def attempted() -> None:
            tried.set()
            self._set_ready()

        syncer = asyncio.create_task(self._history.keep_up(attempted), name="chase-client-sync")
        pump = asyncio.create_task(self._sender.pump(hello.limits, tried), name="chase-client-outbox")
        try:
            await reader
        finally:
            for task in (reader, syncer, pump):
                task.cancel()
            await asyncio.gather(reader, syncer, pump, return_exceptions=True)
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
                if self._history.is_gap(message):
                    log.info("client.gap", message_id=message.id, prev_id=message.prev_id)
                    self._history.request_sync()
                self._add([message], Source.LIVE)
            case ResyncFrame(reason=reason):
                log.info("client.resync", reason=reason)
                self._history.request_sync()
            case AckFrame():
                self._sender.on_ack(frame)
            case PresenceFrame(online=came, offline=went):
                for user in came:
                    self.online.add(user.id)
                    self._hub.emit(PresenceChanged(user.id, user.username, True))
                for user in went:
                    self.online.discard(user.id)
                    self._hub.emit(PresenceChanged(user.id, user.username, False))
            case HistoryPageFrame() | SyncPageFrame() | PongFrame() | RoomFrame() | RoomListFrame() \
                    | RoomMemberListFrame():
                self._requests.resolve(frame.request_id, frame)
            case ErrorFrame():
                self._on_error(frame)
            case _:
                log.info("client.frame_ignored", type=type(frame).__name__)

    def _on_error(self, error: ErrorFrame) -> None:
        if error.code == RATE_LIMITED:
            # Whatever frame it refused, the bucket is empty: the whole outbox waits.
            self._sender.pause(error)
            if error.client_msg_id is None and error.request_id is None:
                self._sender.rewind_all()  # cannot tell which send it was: resend all unanswered
        if self._requests.resolve(error.request_id, error):
            return
        if error.client_msg_id is None:
            log.info("client.server_error", code=error.code)
            self._hub.emit(ServerError(error.code, error.message))
            return
        self._sender.on_refused(error)

    def _add(self, messages: list[ChatMessage], source: Source, ack: AckFrame | None = None) -> list[ChatMessage]:
        """Store ``messages``, settle one's own pending ones, and emit the new ones per conversation."""
        if self.e2ee is not None:
            messages = self.e2ee.open_all(messages)
        added = self.store.add(messages)
        self._sender.settle(messages, ack)
        by_conversation: dict[ConversationId, list[ChatMessage]] = {}
        for message in added:
            by_conversation.setdefault(conversation_of(message, self.me.id), []).append(message)
        for conversation, batch in by_conversation.items():
            self._hub.emit(MessagesAdded(conversation, batch, source))
        return added

    # --- requests -----------------------------------------------------------------------

    async def send(self, body: str, to: ConversationId = None) -> Outgoing:
        """Queue a message for the public room (``to`` None), one user (an int) or a group room
        (a :class:`~client.core.conversations.Room`) and send it if connected.

        It stays queued, and is resent after reconnects, until acknowledged; await
        ``Outgoing.acked`` to know. Meanwhile it is in :meth:`pending` (PendingAdded is emitted
        now). Raises MessageRejected for an empty or too long body. While not connected it
        also makes the client try to reconnect at once.
        """
        if isinstance(to, int) and self.e2ee is not None:
            # Private messages only (group rooms stay server-readable, docs/e2ee.md). Encrypted
            # once, here: every resend of this client_msg_id is the same ciphertext.
            check_body(body, self.limits)
            client_msg_id = new_client_msg_id()
            sealed = await self.e2ee.seal(body, to, client_msg_id)
            outgoing = await self._sender.send(body, to, self.limits, client_msg_id=client_msg_id, ciphertext=sealed)
        else:
            outgoing = await self._sender.send(body, to, self.limits)
        if self._link is None:
            self._connection.retry()
        return outgoing

    async def request(self, frame: RoomRequest) -> ServerFrame:
        """Send a request frame that carries a ``request_id`` and return its answer, an
        ErrorFrame included (:mod:`client.core.rooms` turns those into errors). Raises
        NotConnected (offline, or the link dropped) or ProtocolFailure (no answer in time)."""
        link = self._link
        if link is None:
            raise NotConnected("not connected to the server")
        assert frame.request_id is not None
        future = self._requests.open(frame.request_id)
        try:
            await link.send(encode(frame))
            return await asyncio.wait_for(future, self._request_timeout)  # type: ignore[return-value]
        except LinkClosed:
            raise NotConnected("the connection dropped") from None
        except TimeoutError:
            raise ProtocolFailure(f"no answer to {frame.type} in time") from None
        finally:
            self._requests.close(frame.request_id)

    def acked(self, client_msg_id: str) -> asyncio.Future[AckFrame] | None:
        """The ack future of a queued message (also of one kept from an earlier session)."""
        return self._sender.acked(client_msg_id)

    def pending(self, conversation: ConversationId) -> list[PendingMessage]:
        """One's own messages in ``conversation`` not stored yet (or refused), oldest first.

        Show them after the conversation's stored messages; the events above keep a view current.
        """
        return self.outbox.messages(conversation)

    # --- what is kept on disk -----------------------------------------------------------

    def _restore_outbox(self) -> None:
        if self._local is None:
            return
        for saved in self._local.outbox:
            if saved.client_msg_id not in self.outbox:
                body = saved.body
                if saved.ciphertext is not None and self.e2ee is not None:
                    body = self.e2ee.sent_plaintext(saved.client_msg_id) or ""
                to = Room(saved.room_id) if saved.room_id is not None else saved.recipient_id
                entry = self.outbox.add(body, to, saved.client_msg_id,
                                        state=PendingState.WAITING, queued_at=saved.queued_at,
                                        ciphertext=saved.ciphertext)
                self._sender.restore(entry)

    def _save_outbox(self, outbox: Outbox) -> None:
        assert self._local is not None
        self._local.outbox = [
            SavedMessage(client_msg_id=e.client_msg_id, queued_at=e.queued_at,
                         body="" if e.ciphertext is not None else e.body,
                         recipient_id=None if isinstance(e.conversation, Room) else e.conversation,
                         room_id=e.conversation.id if isinstance(e.conversation, Room) else None,
                         ciphertext=e.ciphertext)
            for e in outbox.unacked()]
        self._local.save()

    def _save_cursor(self, cursor: int) -> None:
        assert self._local is not None
        self._local.cursor = cursor
        self._local.save()

    async def load_history(self, conversation: ConversationId, *, older: bool = False) -> list[ChatMessage]:
        """Fetch a page of ``conversation`` (the newest, or the one before the oldest known).

        Returns the messages that were new; also emitted as MessagesAdded + HistoryLoaded.
        Raises NotConnected when offline.
        """
        return await self._history.load(conversation, older=older)
