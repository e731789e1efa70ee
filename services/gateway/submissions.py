"""The gateway's publishing of sends: every connection's sends that arrive in one turn of the
event loop go to the broker as one event.

Each send costs the broker a publish, a confirm, an entry in the persistence worker's quorum
queue, a delivery and an ack; under load those were the broker's largest share of the work per
message. :class:`SubmissionPublisher` gathers the ``MessageSubmitted`` of all connections that
arrive before the event loop comes round again and publishes them as one ``MessagesSubmitted``
(a lone one as it is, which workers of every version accept). Nothing waits for a group to
fill: a send that arrives alone is published in the next turn of the loop, as before.

Each caller still awaits its own send's confirm, so a connection's read loop reads its next
frame only once its send is in the queue (per-sender order, docs/guarantees.md, promise 4):
one connection has at most one send in a group in flight, and its next one goes in a later
group. A group the broker does not confirm fails every send in it, each with its own
``BusUnavailable``, which the caller answers as before (``ConnectionSession.publish_failed``).
"""

from __future__ import annotations

import asyncio

from chase import metrics, routing
from chase.bus.port import Bus, BusUnavailable
from chase.logging import get_logger
from chase.schemas import MAX_SUBMITTED_PER_EVENT, MessagesSubmitted, MessageSubmitted

log = get_logger(__name__)

_Waiting = tuple[MessageSubmitted, "asyncio.Future[None]"]


class SubmissionPublisher:
    """Publishes sends in groups; ``await publish(event)`` per send, ``await stop()`` at the end."""

    def __init__(self, bus: Bus, *, max_group: int = MAX_SUBMITTED_PER_EVENT) -> None:
        if not 1 <= max_group <= MAX_SUBMITTED_PER_EVENT:
            raise ValueError(f"max_group must be between 1 and {MAX_SUBMITTED_PER_EVENT}")
        self._bus = bus
        self._max_group = max_group
        self._waiting: list[_Waiting] = []
        self._flush_handle: asyncio.Handle | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        #: Events confirmed so far, and the sends they carried (logged when the gateway stops).
        self.groups_published = 0
        self.sends_published = 0

    async def publish(self, event: MessageSubmitted) -> None:
        """Return once the broker confirmed the event that carries ``event``; raise
        :class:`BusUnavailable` when it did not (the caller must then not report success)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((event, future))
        if len(self._waiting) >= self._max_group:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        # A caller that gave up before its turn came (its connection's task was cancelled) is
        # not published for: nobody would tell its client the outcome.
        group = [(event, future) for event, future in self._waiting if not future.done()]
        self._waiting = []
        if not group:
            return
        task = asyncio.get_running_loop().create_task(self._publish(group))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, group: list[_Waiting]) -> None:
        events = [event for event, _ in group]
        metrics.GATEWAY_SUBMISSION_GROUP.observe(len(events))
        try:
            await self._bus.publish(
                routing.MESSAGE_SUBMITTED, events[0] if len(events) == 1 else MessagesSubmitted(items=events)
            )
        except BusUnavailable as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(BusUnavailable(str(exc)))
            return
        except BaseException as exc:
            # Cancelled (the gateway stops) or a bug: nobody may be left waiting for ever.
            for _, future in group:
                if not future.done():
                    future.set_exception(BusUnavailable(f"the send was not published: {exc!r}"))
            raise
        self.groups_published += 1
        self.sends_published += len(events)
        for _, future in group:
            if not future.done():
                future.set_result(None)

    async def stop(self) -> None:
        """Publish what waits for its turn, and wait (bounded by the bus's publish time-out)
        for what is being published."""
        if self._waiting:
            self._flush()
        await asyncio.gather(*self._publishing, return_exceptions=True)
