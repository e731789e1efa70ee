"""Keeping under the gateway's rate limit, so that a send is not refused and overtaken.

The gateway refuses a frame that finds its token bucket empty (``rate_limited``) but goes on
reading the frames behind it: if a token refilled meanwhile, the next message is stored and the
refused one, resent later, lands after it. So the client must not count on being refused
politely; it paces itself.

Every frame goes through a :class:`Pacer`, a token bucket with half the gateway's burst and
80 % of its rate. Sends are also limited to a window of unacknowledged ones (a quarter of the
burst, see :func:`send_window`). Frames the gateway has not read yet are at most that window plus
the few open requests, and frames sent since are within the client's bucket; together they stay
below the gateway's burst even when the gateway reads them late and all at once (it reads
nothing else of this connection while a send waits for the broker). A ``rate_limited`` that
comes anyway (another device, a lower limit) pauses the whole outbox (see
:mod:`client.core.sending`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from chase.schemas import Limits
from client.core.backoff import Sleep
from client.core.transport import Link


def send_window(limits: Limits) -> int:
    """How many sends may wait for their ack at once on a link with these limits."""
    return max(1, limits.rate_burst // 4)


class Pacer:
    """A token bucket: :meth:`take` waits until a frame may go."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._rate, self._burst = rate, float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._at = float(burst), clock()
        self._lock = asyncio.Lock()  # first come, first served

    @classmethod
    def for_limits(cls, limits: Limits) -> Pacer:
        return cls(max(limits.rate_per_second * 0.8, 0.1), max(1, limits.rate_burst // 2))

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
                self._at = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await self._sleep((1.0 - self._tokens) / self._rate)


class PacedLink(Link):
    """A link whose every frame waits for the pacer first."""

    def __init__(self, link: Link, pacer: Pacer) -> None:
        self.inner, self._pacer = link, pacer

    async def send(self, text: str) -> None:
        await self._pacer.take()
        await self.inner.send(text)

    async def recv(self) -> str:
        return await self.inner.recv()

    async def close(self) -> None:
        await self.inner.close()
