"""One's own messages not stored yet: resent until acknowledged, and shown meanwhile.

The server deduplicates by (sender, client_msg_id), so resending an entry with its original id
after a reconnect can never store a message twice: it answers with the original ack.

Each entry is also what a UI shows until the message is stored: a :class:`PendingMessage` in a
:class:`PendingState`. Pending messages have no id yet, so they are not in the id-ordered
:class:`~client.core.conversations.ConversationStore`; a view shows them after the stored
messages of their conversation, in the order they were written. An entry ends when its stored
message arrives (its ack, or the message itself from a sync page or live delivery, whichever
comes first). An entry the server refused for good stays, FAILED, only to be shown: it is never
resent and no longer counts as unacknowledged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chase.schemas import AckFrame, Encrypted, SendFrame
from client.core.conversations import ConversationId, Room

Clock = Callable[[], datetime]


def local_now() -> datetime:
    """The local wall-clock time, timezone-aware (when the user wrote a message)."""
    return datetime.now().astimezone()


def new_client_msg_id() -> str:
    """A fresh client_msg_id: 32 hex characters, unique without coordination."""
    return uuid.uuid4().hex


class PendingState(StrEnum):
    SENDING = "sending"      # written to the connection; the ack is awaited
    WAITING = "waiting"      # no connection: sent as soon as it is back
    RETRYING = "retrying"    # the server said "not now" (a retryable error): resent after a pause
    FAILED = "failed"        # refused for good (a non-retryable error): never sent again


@dataclass(frozen=True)
class PendingMessage:
    client_msg_id: str
    #: Where it was sent, which is also the conversation it shows in (None: the public room).
    conversation: ConversationId
    body: str
    #: Local time the user sent it (the server's time comes with the ack).
    queued_at: datetime
    state: PendingState
    #: Why it is not stored (yet), in the server's words: set when RETRYING or FAILED.
    reason: str = ""
    #: End-to-end encrypted (client.core.e2ee): what is sent instead of ``body``, made once so
    #: every resend is the same message.
    ciphertext: Encrypted | None = None

    @property
    def frame(self) -> SendFrame:
        if isinstance(self.conversation, Room):
            return SendFrame(client_msg_id=self.client_msg_id, room_id=self.conversation.id, body=self.body)
        if self.ciphertext is not None:
            return SendFrame(client_msg_id=self.client_msg_id, recipient_id=self.conversation, body="",
                             ciphertext=self.ciphertext)
        return SendFrame(client_msg_id=self.client_msg_id, recipient_id=self.conversation, body=self.body)


class Outbox:
    def __init__(self, clock: Clock = local_now, on_change: Callable[[Outbox], None] | None = None) -> None:
        self._clock = clock
        # Called whenever the set of unacknowledged messages changes (to keep them on disk).
        self._on_change = on_change or (lambda _outbox: None)
        # dicts keep insertion order: resending and showing walk them in the order the user sent.
        self._entries: dict[str, PendingMessage] = {}

    def add(self, body: str, recipient_id: ConversationId, client_msg_id: str | None = None, *,
            state: PendingState = PendingState.WAITING, queued_at: datetime | None = None,
            ciphertext: Encrypted | None = None) -> PendingMessage:
        """Record a message to send; the caller must send ``.frame`` when connected."""
        entry = PendingMessage(client_msg_id=client_msg_id or new_client_msg_id(), conversation=recipient_id,
                               body=body, queued_at=queued_at or self._clock(), state=state,
                               ciphertext=ciphertext)
        self._entries[entry.client_msg_id] = entry
        self._on_change(self)
        return entry

    def unacked(self) -> list[PendingMessage]:
        """Every entry still to be sent (not FAILED), oldest first."""
        return [e for e in self._entries.values() if e.state is not PendingState.FAILED]

    def mark(self, client_msg_id: str, state: PendingState, reason: str = "") -> PendingMessage | None:
        """Move an entry to ``state``; returns the updated entry, or None when nothing changed.

        A FAILED entry stays failed: a late resend task or reconnect cannot revive it.
        """
        entry = self._entries.get(client_msg_id)
        if entry is None or entry.state is PendingState.FAILED or (entry.state, entry.reason) == (state, reason):
            return None
        entry = self._entries[client_msg_id] = replace(entry, state=state, reason=reason)
        if state is PendingState.FAILED:
            self._on_change(self)
        return entry

    def ack(self, ack: AckFrame) -> PendingMessage | None:
        """Forget an acknowledged message; returns it, or None when it was not pending."""
        return self.drop(ack.client_msg_id)

    def drop(self, client_msg_id: str) -> PendingMessage | None:
        """Forget an entry: its message is stored, or it is no longer to be shown."""
        entry = self._entries.pop(client_msg_id, None)
        if entry is not None:
            self._on_change(self)
        return entry

    def entry(self, client_msg_id: str) -> PendingMessage | None:
        """The entry with this id, whatever its state (FAILED included)."""
        return self._entries.get(client_msg_id)

    def get(self, client_msg_id: str) -> SendFrame | None:
        """The frame to resend for this id, or None when it is stored, unknown or FAILED."""
        entry = self._unacked(client_msg_id)
        return entry.frame if entry is not None else None

    def pending(self) -> list[SendFrame]:
        """Every unacknowledged message, oldest first: resend them all after (re)connecting."""
        return [e.frame for e in self._entries.values() if e.state is not PendingState.FAILED]

    def messages(self, conversation: ConversationId) -> list[PendingMessage]:
        """What to show after the stored messages of ``conversation``, oldest first (FAILED too)."""
        return [e for e in self._entries.values() if e.conversation == conversation]

    def __len__(self) -> int:
        return sum(e.state is not PendingState.FAILED for e in self._entries.values())

    def __contains__(self, client_msg_id: object) -> bool:
        return self._unacked(client_msg_id) is not None

    def _unacked(self, client_msg_id: object) -> PendingMessage | None:
        # A FAILED entry is only shown: it is never resent and no longer counts as unacknowledged.
        entry = self._entries.get(client_msg_id) if isinstance(client_msg_id, str) else None
        return entry if entry is not None and entry.state is not PendingState.FAILED else None
