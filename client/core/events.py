"""What the chat client tells its UI, as plain frozen dataclasses.

A UI receives them through :meth:`client.core.chat.ChatClient.subscribe` (a callback, called on
the event loop, which must not block) or :meth:`~client.core.chat.ChatClient.events` (an async
iterator). Both see every event in the order it happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from chase.logging import get_logger
from chase.schemas import ChatMessage, HelloFrame
from client.core.conversations import ConversationId
from client.core.outbox import PendingMessage


class ClientState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"   # the fast attempts after a drop
    #: Not connected. With ``next_attempt_at`` set, still trying (slowly): sending or
    #: :meth:`~client.core.chat.ChatClient.retry` tries at once. Without it, stopped (closed,
    #: session ended).
    OFFLINE = "offline"


class Source(StrEnum):
    """Why messages were added: only LIVE and SYNC ones are news to the user."""

    LIVE = "live"            # pushed by the server as it happened
    SYNC = "sync"            # missed while disconnected, fetched after a reconnect
    HISTORY = "history"      # a history page (or the first load after logging in)
    OWN = "own"              # one's own message, acknowledged by the server


@dataclass(frozen=True)
class StateChanged:
    state: ClientState
    #: While reconnecting: the attempt about to be made and the configured maximum.
    attempt: int = 0
    max_attempts: int = 0
    #: While reconnecting: seconds until that attempt.
    delay: float | None = None
    #: Why the connection is not up (the last error), in plain words.
    reason: str = ""
    #: While reconnecting or offline and still trying: local time of the next attempt.
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class Connected:
    hello: HelloFrame


@dataclass(frozen=True)
class MessagesAdded:
    """New messages in one conversation (already deduplicated), in id order."""

    conversation: ConversationId
    messages: list[ChatMessage]
    source: Source


@dataclass(frozen=True)
class HistoryLoaded:
    conversation: ConversationId
    has_more: bool


@dataclass(frozen=True)
class PresenceChanged:
    user_id: int
    username: str
    online: bool


@dataclass(frozen=True)
class MessageAcked:
    client_msg_id: str
    message_id: int
    duplicate: bool = False


@dataclass(frozen=True)
class SendFailed:
    """The server refused a message. When ``retryable`` it stays queued and is sent again."""

    client_msg_id: str
    code: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class PendingAdded:
    """One's own message, queued: show it at once, after the stored messages of its conversation."""

    message: PendingMessage


@dataclass(frozen=True)
class PendingChanged:
    """A pending message changed state (sending, waiting, retrying, or failed for good)."""

    message: PendingMessage


@dataclass(frozen=True)
class PendingStored:
    """A pending message is stored: ``message`` (already in the store) takes its place.

    Emitted before the MessagesAdded that carries ``message``, so a view can turn the pending
    entry into the stored message and then skip it in MessagesAdded as known by id.
    """

    client_msg_id: str
    conversation: ConversationId
    message: ChatMessage


@dataclass(frozen=True)
class ServerError:
    """An error frame not tied to one message or request (logged, shown, never fatal)."""

    code: str
    message: str


@dataclass(frozen=True)
class SessionEnded:
    """The token is expired or revoked: the UI must go back to the login screen."""

    reason: str = field(default="your session has expired: please log in again")


ClientEvent = (
    StateChanged | Connected | MessagesAdded | HistoryLoaded | PresenceChanged | MessageAcked
    | SendFailed | PendingAdded | PendingChanged | PendingStored | ServerError | SessionEnded
)

Listener = Callable[[ClientEvent], None]


class EventHub:
    """Hands every event to every listener, in order; a failing listener harms no one else."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event from now on; call the returned function to stop."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every event from now on, as an async iterator (ends when the caller stops iterating)."""
        queue: asyncio.Queue[ClientEvent] = asyncio.Queue()
        unsubscribe = self.subscribe(queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()

    def emit(self, event: ClientEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a UI bug must not take the connection down with it
                get_logger(__name__).exception("client.listener_failed", event=type(event).__name__)
