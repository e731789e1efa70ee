"""A token bucket: ``rate`` tokens a second, at most ``burst`` saved up.

Sans-I/O: the caller passes the monotonic time, so tests drive it with a fake clock.
"""

from __future__ import annotations


class TokenBucket:
    # One per connection: slots, no instance dict.
    __slots__ = ("rate", "burst", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token; False means the caller must refuse the work it stands for."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self, now: float) -> float:
        """Seconds until one token is back (0 when one is available)."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def _refill(self, now: float) -> None:
        # A clock that went back would otherwise drain the bucket.
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now
