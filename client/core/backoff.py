"""The reconnect policy: a few fast attempts, then slow ones for as long as it takes.

Fast attempts use exponential backoff with full jitter (a uniform delay between 0 and the
exponential cap), which spreads the reconnects of many clients after a server restart instead of
having them all knock at the same instants. After ``max_attempts`` of them the client does not
give up: it keeps trying every ``slow_cap / 2`` to ``slow_cap`` seconds (jittered too), and a
user action (sending, Retry) starts a new round of fast attempts at once.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

#: Waits out a delay; injected (asyncio.sleep in production) so tests need no real sleeps.
Sleep = Callable[[float], Awaitable[None]]


class Random(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class BackoffPolicy:
    #: Upper bound of the first delay, in seconds; it doubles with every attempt.
    base: float = 0.5
    #: No fast delay is ever longer than this.
    cap: float = 30.0
    #: How many fast attempts before the slow ones (the UI then says offline, offers Retry).
    max_attempts: int = 8
    #: Slow attempts come every ``slow_cap / 2`` to ``slow_cap`` seconds, for ever.
    slow_cap: float = 60.0
    rng: Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.max_attempts < 1 or self.slow_cap <= 0:
            raise ValueError("backoff needs 0 < base <= cap, slow_cap > 0 and max_attempts >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt number ``attempt`` (1-based) may wait."""
        if self.exhausted(attempt):
            return self.slow_cap
        # min() before the power would overflow for large attempts; cap the exponent instead.
        return min(self.cap, self.base * 2 ** min(attempt - 1, 62))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based); the caller sleeps, then tries."""
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        if self.exhausted(attempt):
            return self.rng.uniform(self.slow_cap / 2, self.slow_cap)
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def exhausted(self, attempt: int) -> bool:
        """True when ``attempt`` is past the fast ones: a slow attempt, the client is offline."""
        return attempt > self.max_attempts
