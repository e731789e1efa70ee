"""The sending side: one's own messages from :meth:`Sender.send` until they are stored.

Each message waits in the :class:`~client.core.outbox.Outbox` in a :class:`PendingState`, which
follows the connection (SENDING while up, WAITING while down) and the server's refusals
(RETRYING after a retryable error, FAILED for good otherwise). After every (re)connect and
catch-up the caller must :meth:`Sender.resend_all`, and when a link drops it must
:meth:`Sender.link_lost`.

A pending message is settled by whichever stored copy comes first (its ack, a sync page, or
live delivery): the pending entry is dropped, PendingStored is emitted and its ``acked`` future
is resolved. After that it is never resent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from chase.logging import get_logger
from chase.schemas import AckFrame, ChatMessage, ErrorFrame, Limits, SendFrame, UserRef, encode
from chase.text import is_blank
from client.core.backoff import BackoffPolicy, Sleep
from client.core.errors import MessageRejected
from client.core.events import EventHub, MessageAcked, PendingAdded, PendingChanged, PendingStored, SendFailed, Source
from client.core.outbox import Outbox, PendingState
from client.core.transport import Link, LinkClosed

log = get_logger(__name__)

#: Puts messages into the store and tells the UI (the chat client's one way in for messages).
AddMessages = Callable[[list[ChatMessage], Source, AckFrame | None], object]


@dataclass(frozen=True)
class Outgoing:
    """A message handed to the client. Await ``acked`` for its AckFrame (or MessageRejected).

    When the stored message comes before any ack (a sync after a reconnect), ``acked`` gets an
    AckFrame made from it, since nothing is resent once it is known to be stored.
    """

    client_msg_id: str
    acked: asyncio.Future[AckFrame]


def check_body(body: str, limits: Limits | None) -> None:
    """Raise MessageRejected for a body the server would refuse (empty, or over the limit)."""
    if is_blank(body):
        raise MessageRejected("the message is empty (or has no visible character)")
    if limits is not None and len(body) > limits.max_body_chars:
        raise MessageRejected(f"the message has {len(body)} characters; the limit is {limits.max_body_chars}")


class Sender:
    def __init__(self, outbox: Outbox, hub: EventHub, me: UserRef, *, link: Callable[[], Link | None],
                 add: AddMessages, policy: BackoffPolicy, sleep: Sleep) -> None:
        self._outbox = outbox
        self._hub = hub
        self._me = me
        self._link = link
        self._add = add
        self._policy = policy
        self._sleep = sleep
        self._ack_waiters: dict[str, asyncio.Future[AckFrame]] = {}
        self._resend_attempts: dict[str, int] = {}

    async def send(self, body: str, to: int | None, limits: Limits | None) -> Outgoing:
        """Queue a message and send it if connected; see :meth:`ChatClient.send`."""
        check_body(body, limits)
        state = PendingState.WAITING if self._link() is None else PendingState.SENDING
        pending = self._outbox.add(body, to, state=state)
        waiter: asyncio.Future[AckFrame] = asyncio.get_running_loop().create_future()
        # Nobody may await a rejection; retrieve it so asyncio does not warn about it.
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._ack_waiters[pending.client_msg_id] = waiter
        self._hub.emit(PendingAdded(pending))
        await self._send_frame(pending.frame)
        return Outgoing(pending.client_msg_id, waiter)

    async def resend_all(self) -> None:
        """Send every unacknowledged message again, oldest first, with its original id.

        The server deduplicates by client_msg_id, so a message stored before the drop is
        answered with its original ack, never stored twice.
        """
        for frame in self._outbox.pending():
            await self._send_frame(frame)

    def link_lost(self) -> None:
        """The link is gone: every unacknowledged message waits for the next one."""
        for frame in self._outbox.pending():
            self._mark(frame.client_msg_id, PendingState.WAITING)

    def settle(self, messages: list[ChatMessage], ack: AckFrame | None = None) -> None:
        """Stored copies of one's own pending messages replace their entries (never resent)."""
        for message in messages:
            if message.sender.id != self._me.id:
                continue
            pending = self._outbox.drop(message.client_msg_id)
            if pending is None:
                continue
            self._resend_attempts.pop(message.client_msg_id, None)
            self._hub.emit(PendingStored(pending.client_msg_id, pending.conversation, message))
            self._resolve(message.client_msg_id, ack or AckFrame(
                client_msg_id=message.client_msg_id, message_id=message.id, created_at=message.created_at))

    def on_ack(self, ack: AckFrame) -> None:
        pending = self._outbox.entry(ack.client_msg_id)
        if pending is not None:
            self._add([ChatMessage(id=ack.message_id, sender=self._me, recipient_id=pending.conversation,
                                   body=pending.body, created_at=ack.created_at,
                                   client_msg_id=ack.client_msg_id)], Source.OWN, ack)
        self._hub.emit(MessageAcked(ack.client_msg_id, ack.message_id, ack.duplicate))
        self._resolve(ack.client_msg_id, ack)

    def on_refused(self, error: ErrorFrame) -> None:
        """The server refused the message ``error.client_msg_id``: retry it later, or fail it."""
        assert error.client_msg_id is not None
        self._hub.emit(SendFailed(error.client_msg_id, error.code, error.message, error.retryable))
        if error.retryable and error.client_msg_id in self._outbox:
            self._mark(error.client_msg_id, PendingState.RETRYING, error.message)
            asyncio.get_running_loop().create_task(self._resend_later(error.client_msg_id))
            return
        # Kept (FAILED) so the user sees what was not sent and why; never resent.
        self._mark(error.client_msg_id, PendingState.FAILED, error.message)
        self._resolve(error.client_msg_id, MessageRejected(error.message))

    async def _resend_later(self, client_msg_id: str) -> None:
        attempt = self._resend_attempts.get(client_msg_id, 0) + 1
        self._resend_attempts[client_msg_id] = attempt
        await self._sleep(self._policy.delay(min(attempt, self._policy.max_attempts)))
        frame = self._outbox.get(client_msg_id)
        if frame is not None and self._link() is not None:
            await self._send_frame(frame)

    async def _send_frame(self, frame: SendFrame) -> None:
        link = self._link()
        if link is None:
            self._mark(frame.client_msg_id, PendingState.WAITING)  # sent after the next reconnect
            return
        self._mark(frame.client_msg_id, PendingState.SENDING)
        try:
            await link.send(encode(frame))
        except LinkClosed:
            log.info("client.send_on_closed_link")
            self._mark(frame.client_msg_id, PendingState.WAITING)

    def _mark(self, client_msg_id: str, state: PendingState, reason: str = "") -> None:
        changed = self._outbox.mark(client_msg_id, state, reason)
        if changed is not None:
            self._hub.emit(PendingChanged(changed))

    def _resolve(self, client_msg_id: str, outcome: AckFrame | MessageRejected) -> None:
        waiter = self._ack_waiters.pop(client_msg_id, None)
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, AckFrame):
            waiter.set_result(outcome)
        else:
            waiter.set_exception(outcome)
