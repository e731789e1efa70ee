"""When to play the notification sound: a pure decision, so it is tested without Qt or audio."""

from __future__ import annotations

from dataclasses import dataclass

from chase.schemas import ChatMessage
from client.core.conversations import ConversationId, conversation_of


@dataclass(frozen=True)
class Attention:
    """What the user is looking at when a message arrives."""

    #: The conversation open in the chat view (``None``: the public room).
    viewing: ConversationId
    #: Whether the main window is the active window.
    window_active: bool
    muted: bool


def should_notify(message: ChatMessage, me_id: int, attention: Attention) -> bool:
    """True when ``message`` deserves a sound: not muted, not one's own, and not in plain sight."""
    if attention.muted or message.sender.id == me_id:
        return False
    if not attention.window_active:
        return True
    return conversation_of(message, me_id) != attention.viewing
