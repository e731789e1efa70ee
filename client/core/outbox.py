"""Messages sent but not yet acknowledged, kept in send order so they can be resent.

The server deduplicates by (sender, client_msg_id), so resending an entry with its original id
after a reconnect can never store a message twice: it answers with the original ack.
"""

from __future__ import annotations

import uuid

from chase.schemas import AckFrame, SendFrame


def new_client_msg_id() -> str:
    """A fresh client_msg_id: 32 hex characters, unique without coordination."""
    return uuid.uuid4().hex


class Outbox:
    def __init__(self) -> None:
        # dicts keep insertion order: resending walks them in the order the user sent.
        self._pending: dict[str, SendFrame] = {}

    def add(self, body: str, recipient_id: int | None, client_msg_id: str | None = None) -> SendFrame:
        """Record a message to send; the caller must send the returned frame when connected."""
        frame = SendFrame(
            client_msg_id=client_msg_id or new_client_msg_id(), recipient_id=recipient_id, body=body
        )
        self._pending[frame.client_msg_id] = frame
        return frame

    def ack(self, ack: AckFrame) -> SendFrame | None:
        """Forget an acknowledged message; returns it, or None when it was not pending."""
        return self._pending.pop(ack.client_msg_id, None)

    def drop(self, client_msg_id: str) -> SendFrame | None:
        """Forget a message the server refused for good (it must not be resent)."""
        return self._pending.pop(client_msg_id, None)

    def get(self, client_msg_id: str) -> SendFrame | None:
        return self._pending.get(client_msg_id)

    def pending(self) -> list[SendFrame]:
        """Every unacknowledged message, oldest first: resend them all after (re)connecting."""
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, client_msg_id: object) -> bool:
        return client_msg_id in self._pending
