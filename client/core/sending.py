"""The sending side: one's own messages from :meth:`Sender.send` until they are stored.

Each message waits in the :class:`~client.core.outbox.Outbox` in a :class:`PendingState`, which
follows the connection (SENDING while up, WAITING while down) and the server's refusals
(RETRYING after a retryable error, FAILED for good otherwise).

**Strict order.** Messages go out one after another in the order they were written, through a
window of unacknowledged sends (:func:`~client.core.pacing.send_window`), never around it. A
retryable refusal (``rate_limited``, ``unavailable``) of one message pauses the whole outbox
(for the server's ``retry in N s``, or a backoff), and then everything from that message on is
sent again in order, so a later message never overtakes an earlier one; until one is
acknowledged again they go one at a time (a store that came back between two pipelined sends
would otherwise store the second one first). A send that gets no
answer at all for ``ack_timeout`` seconds is treated the same way (without the pause).

For each link the caller runs :meth:`Sender.pump` (after it set the link) and, when the link
drops, calls :meth:`Sender.link_lost`. Catching up (sync) runs beside it: neither waits for the
other.

A pending message is settled by whichever stored copy comes first (its ack, a sync page, or
live delivery): the pending entry is dropped, PendingStored is emitted and its ``acked`` future
is resolved. After that it is never resent.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from chase.logging import get_logger
from chase.schemas import AckFrame, ChatMessage, Encrypted, ErrorFrame, Limits, UserRef, encode
from chase.text import is_blank
from client.core.backoff import BackoffPolicy, Sleep
from client.core.conversations import ConversationId, Room
from client.core.errors import MessageRejected
from client.core.events import EventHub, MessageAcked, PendingAdded, PendingChanged, PendingStored, SendFailed, Source
from client.core.outbox import Outbox, PendingMessage, PendingState
from client.core.pacing import send_window
from client.core.transport import Link, LinkClosed

log = get_logger(__name__)

#: Puts messages into the store and tells the UI (the chat client's one way in for messages).
AddMessages = Callable[[list[ChatMessage], Source, AckFrame | None], object]

RATE_LIMITED = "rate_limited"
#: The gateway's rate_limited message says when to retry: "too many frames; retry in 0.05s".
_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)\s*s")


def retry_after(error: ErrorFrame, fallback: float) -> float:
    """Seconds to wait after a ``rate_limited`` error, as the server said (else ``fallback``)."""
    found = _RETRY_IN.search(error.message)
    return min(float(found.group(1)), 60.0) if found else fallback


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
                 add: AddMessages, policy: BackoffPolicy, sleep: Sleep, ack_timeout: float = 20.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._outbox = outbox
        self._hub = hub
        self._me = me
        self._link = link
        self._add = add
        self._policy = policy
        self._sleep = sleep
        self._ack_timeout = ack_timeout
        self._monotonic = monotonic
        self._ack_waiters: dict[str, asyncio.Future[AckFrame]] = {}
        #: Sent on the current link and not answered yet, in the order sent: id -> when.
        self._in_flight: dict[str, float] = {}
        self._window = 1
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        #: Seconds the outbox must pause before sending again (set by a retryable refusal).
        self._pause = 0.0
        #: True while nothing may be sent: no link yet, its first catch-up not tried, or a pause.
        self._paused = True
        self._refusals = 0  # retryable refusals in a row, for the backoff
        #: After a retryable refusal, one message at a time until one is acknowledged again: a
        #: store that comes back between two pipelined sends would store the later one first.
        self._probing = False

    # --- the user's side ------------------------------------------------------------------

    async def send(self, body: str, to: ConversationId, limits: Limits | None, *, client_msg_id: str | None = None,
                   ciphertext: Encrypted | None = None) -> Outgoing:
        """Queue a message and send it if connected; see :meth:`ChatClient.send`."""
        check_body(body, limits)
        state = PendingState.WAITING if self._link() is None else PendingState.SENDING
        pending = self._outbox.add(body, to, client_msg_id, state=state, ciphertext=ciphertext)
        self._hub.emit(PendingAdded(pending))
        waiter = self._waiter(pending.client_msg_id)
        await self._flush()
        return Outgoing(pending.client_msg_id, waiter)

    def restore(self, pending: PendingMessage) -> None:
        """An unsent message kept from an earlier session: queued first, sent in order."""
        self._waiter(pending.client_msg_id)
        self._hub.emit(PendingAdded(pending))

    def acked(self, client_msg_id: str) -> asyncio.Future[AckFrame] | None:
        """The future of a queued message (restored ones included), or None when not queued."""
        return self._ack_waiters.get(client_msg_id)

    def _waiter(self, client_msg_id: str) -> asyncio.Future[AckFrame]:
        waiter: asyncio.Future[AckFrame] = asyncio.get_running_loop().create_future()
        # Nobody may await a rejection; retrieve it so asyncio does not warn about it.
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._ack_waiters[client_msg_id] = waiter
        return waiter

    # --- per link -------------------------------------------------------------------------

    async def pump(self, limits: Limits, after: asyncio.Event) -> None:
        """Send the outbox in order on the current link, for as long as the caller lets it run.

        Nothing is sent before ``after`` is set (the first catch-up was tried, so messages it
        finds stored are not resent). The caller cancels it when the link drops, then calls
        :meth:`link_lost`.
        """
        self._window = send_window(limits)
        self._in_flight.clear()
        self._pause, self._paused = 0.0, True
        await after.wait()
        self._paused = False
        self._wake.set()
        while True:
            if self._pause:
                delay, self._pause, self._paused = self._pause, 0.0, True
                try:
                    await self._sleep(delay)
                finally:
                    self._paused = False
            # Cleared before flushing: an ack that comes while it sends must wake the next round.
            self._wake.clear()
            await self._flush()
            if self._pause:
                continue
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancel that
            # comes with a wake-up, and the link's clean-up would then wait for ever.
            try:
                async with asyncio.timeout(self._until_overdue()):
                    await self._wake.wait()
            except TimeoutError:
                self._rewind_overdue()

    def link_lost(self) -> None:
        """The link is gone: every unacknowledged message waits for the next one."""
        self._in_flight.clear()
        self._paused = True
        for entry in self._outbox.unacked():
            self._mark(entry.client_msg_id, PendingState.WAITING)

    async def _flush(self) -> None:
        """Send what the window allows now, oldest first; never past an earlier unsent one."""
        async with self._lock:
            while not self._paused and not self._pause and len(self._in_flight) < self._current_window():
                link = self._link()
                if link is None:
                    return
                entry = next((e for e in self._outbox.unacked() if e.client_msg_id not in self._in_flight), None)
                if entry is None:
                    return
                self._in_flight[entry.client_msg_id] = self._monotonic()
                self._mark(entry.client_msg_id, PendingState.SENDING)
                try:
                    await link.send(encode(entry.frame))
                except LinkClosed:
                    log.info("client.send_on_closed_link")
                    return  # link_lost() follows

    def _current_window(self) -> int:
        return 1 if self._probing else self._window

    def _until_overdue(self) -> float | None:
        if not self._in_flight:
            return None
        oldest = min(self._in_flight.values())
        return max(0.0, oldest + self._ack_timeout - self._monotonic())

    def _rewind_overdue(self) -> None:
        # No answer at all (e.g. sends the gateway took while the store went down): send the
        # unanswered ones again, in order; the server deduplicates.
        log.info("client.sends_unanswered", count=len(self._in_flight))
        self._in_flight.clear()

    def rewind_all(self) -> None:
        """Send every unanswered message again, in order (after a refusal naming none)."""
        self._in_flight.clear()
        self._wake.set()

    def discard(self, client_msg_id: str) -> None:
        """The user gave up on this message: never sent, shown as FAILED, forgotten on disk."""
        self._in_flight.pop(client_msg_id, None)
        self._mark(client_msg_id, PendingState.FAILED, "discarded")
        self._resolve(client_msg_id, MessageRejected("discarded before it was sent"))

    def _rewind(self, client_msg_id: str) -> None:
        """Forget having sent ``client_msg_id`` and everything sent after it: all go again."""
        if client_msg_id not in self._in_flight:
            return
        ids = list(self._in_flight)
        for later in ids[ids.index(client_msg_id):]:
            del self._in_flight[later]

    # --- the server's answers -------------------------------------------------------------

    def settle(self, messages: list[ChatMessage], ack: AckFrame | None = None) -> None:
        """Stored copies of one's own pending messages replace their entries (never resent)."""
        for message in messages:
            if message.sender.id != self._me.id:
                continue
            pending = self._outbox.drop(message.client_msg_id)
            if pending is None:
                continue
            self._in_flight.pop(message.client_msg_id, None)
            self._wake.set()
            self._hub.emit(PendingStored(pending.client_msg_id, pending.conversation, message))
            self._resolve(message.client_msg_id, ack or AckFrame(
                client_msg_id=message.client_msg_id, message_id=message.id, created_at=message.created_at))

    def on_ack(self, ack: AckFrame) -> None:
        pending = self._outbox.entry(ack.client_msg_id)
        self._refusals, self._probing = 0, False
        self._in_flight.pop(ack.client_msg_id, None)
        self._wake.set()
        if pending is not None:
            room = pending.conversation if isinstance(pending.conversation, Room) else None
            self._add([ChatMessage(id=ack.message_id, sender=self._me,
                                   recipient_id=None if room else pending.conversation,
                                   room_id=room.id if room else None,
                                   body="" if pending.ciphertext is not None else pending.body,
                                   created_at=ack.created_at, client_msg_id=ack.client_msg_id,
                                   ciphertext=pending.ciphertext)], Source.OWN, ack)
        self._hub.emit(MessageAcked(ack.client_msg_id, ack.message_id, ack.duplicate))
        self._resolve(ack.client_msg_id, ack)

    def on_refused(self, error: ErrorFrame) -> None:
        """The server refused the message ``error.client_msg_id``: pause and resend, or fail it."""
        assert error.client_msg_id is not None
        self._hub.emit(SendFailed(error.client_msg_id, error.code, error.message, error.retryable))
        if error.retryable:
            if error.client_msg_id in self._outbox:
                self._mark(error.client_msg_id, PendingState.RETRYING, error.message)
            self._rewind(error.client_msg_id)
            self.pause(error)
            return
        # Kept (FAILED) so the user sees what was not sent and why; never resent.
        self._in_flight.pop(error.client_msg_id, None)
        self._wake.set()
        self._mark(error.client_msg_id, PendingState.FAILED, error.message)
        self._resolve(error.client_msg_id, MessageRejected(error.message))

    def pause(self, error: ErrorFrame) -> None:
        """Hold the whole outbox after a retryable refusal (of a send or of any other frame)."""
        self._probing = True
        if self._paused:
            return  # already waiting; the refusals of the frames sent behind it add nothing
        if error.code == RATE_LIMITED:
            delay = retry_after(error, fallback=1.0)
        else:
            self._refusals += 1
            delay = self._policy.delay(min(self._refusals, self._policy.max_attempts))
        self._pause = max(self._pause, delay)
        self._wake.set()

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
