"""Answering requests for :meth:`Bus.serve`, shared by both adapters.

Each request gets a task of its own, so one slow answer never holds up the next; the adapter
says only how a reply travels back to the requester.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chase.bus.port import BusUnavailable, Delivery, Responder, Subscription
from chase.logging import get_logger
from chase.schemas import Event

log = get_logger("chase.bus")

SendReply = Callable[[Delivery, Event], Awaitable[None]]


class Responders(Subscription):
    """The subscription :meth:`Bus.serve` returns. Set :attr:`inner` to the queue's consumer."""

    def __init__(self, responder: Responder, send_reply: SendReply) -> None:
        self.responder = responder
        self.send_reply = send_reply
        self.inner: Subscription | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def on_delivery(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(delivery))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, delivery: Delivery) -> None:
        try:
            reply = await self.responder(delivery.event)
        except Exception:
            # Requeueing would hand the same request to the same failure forever; the
            # requester gets RequestTimeout instead.
            log.exception("bus.responder_failed", routing_key=delivery.routing_key)
            await delivery.reject(requeue=False)
            return
        try:
            await self.send_reply(delivery, reply)
        except BusUnavailable as exc:
            log.warning("bus.reply_failed", routing_key=delivery.routing_key, error=str(exc))
            await delivery.reject(requeue=True)
            return
        await delivery.ack()

    async def cancel(self) -> None:
        if self.inner is not None:
            await self.inner.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
