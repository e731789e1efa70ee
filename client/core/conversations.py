"""The local message lists: one per conversation, deduplicated by message id, in id order.

Ids are assigned at commit time and are the server's order, so sorting by id gives every
client the same order whatever order frames arrived in (live, sync after a reconnect, history
pages, the ack of one's own message). A message seen twice is kept once.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from chase.schemas import ChatMessage


@dataclass(frozen=True, order=True)
class Room:
    """A group room as a conversation (``client.core.rooms``)."""

    id: int


#: A conversation: ``None`` is the public room, an int is the other user of a private one, a
#: :class:`Room` a group room.
ConversationId = int | None | Room
PUBLIC: ConversationId = None


def conversation_of(message: ChatMessage, me_id: int) -> ConversationId:
    """Which conversation ``message`` belongs to, seen by user ``me_id``."""
    if message.room_id is not None:
        return Room(message.room_id)
    if message.recipient_id is None:
        return PUBLIC
    return message.recipient_id if message.sender.id == me_id else message.sender.id


@dataclass
class _Conversation:
    messages: list[ChatMessage] = field(default_factory=list)
    ids: set[int] = field(default_factory=set)
    #: False once a history page said there is nothing older.
    more_before: bool = True
    history_loaded: bool = False


class ConversationStore:
    def __init__(self, me_id: int) -> None:
        self.me_id = me_id
        self._conversations: dict[ConversationId, _Conversation] = {}

    def _get(self, conversation: ConversationId) -> _Conversation:
        return self._conversations.setdefault(conversation, _Conversation())

    def insert(self, message: ChatMessage) -> tuple[ConversationId, int] | None:
        """Add one message; returns (conversation, index it now has) or None if already known."""
        conversation = conversation_of(message, self.me_id)
        entry = self._get(conversation)
        if message.id in entry.ids:
            return None
        index = bisect.bisect_left(entry.messages, message.id, key=lambda m: m.id)
        entry.messages.insert(index, message)
        entry.ids.add(message.id)
        return conversation, index

    def add(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        """Add messages in any order; returns the ones that were new, in id order."""
        added = [m for m in sorted(messages, key=lambda m: m.id) if self.insert(m) is not None]
        return added

    def messages(self, conversation: ConversationId) -> list[ChatMessage]:
        """The known messages of a conversation, oldest first (a copy)."""
        entry = self._conversations.get(conversation)
        return list(entry.messages) if entry else []

    def oldest_id(self, conversation: ConversationId) -> int | None:
        entry = self._conversations.get(conversation)
        return entry.messages[0].id if entry and entry.messages else None

    def mark_history(self, conversation: ConversationId, *, has_more: bool) -> None:
        """Record what a history page said: whether older messages remain on the server."""
        entry = self._get(conversation)
        entry.history_loaded = True
        entry.more_before = has_more

    def has_more_before(self, conversation: ConversationId) -> bool:
        entry = self._conversations.get(conversation)
        return entry.more_before if entry else True

    def history_loaded(self, conversation: ConversationId) -> bool:
        entry = self._conversations.get(conversation)
        return entry.history_loaded if entry else False

    def max_id(self) -> int:
        """The highest message id held in any conversation (0 when none)."""
        return max((e.messages[-1].id for e in self._conversations.values() if e.messages), default=0)

    def __contains__(self, message_id: object) -> bool:
        return any(message_id in e.ids for e in self._conversations.values())
