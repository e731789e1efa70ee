"""The reconnect policy: exponential backoff with full jitter, for a bounded number of attempts.

Full jitter (a uniform delay between 0 and the exponential cap) spreads the reconnects of many
clients after a server restart, instead of having them all knock at the same instants.
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
    #: No delay is ever longer than this.
    cap: float = 30.0
    #: How many reconnect attempts before giving up (the UI then offers Retry).
    max_attempts: int = 8
    rng: Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.max_attempts < 1:
            raise ValueError("backoff needs 0 < base <= cap and max_attempts >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt number ``attempt`` (1-based) may wait."""
        # min() before the power would overflow for large attempts; cap the exponent instead.
        return min(self.cap, self.base * 2 ** min(attempt - 1, 62))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based); the caller sleeps, then tries."""
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def exhausted(self, attempt: int) -> bool:
        """True when ``attempt`` is past the last allowed one: stop and wait for the user."""
        return attempt > self.max_attempts
