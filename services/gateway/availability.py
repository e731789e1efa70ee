"""Whether messages can be stored right now, as the persistence worker last said; sans-I/O.

One :class:`StoreAvailability` per gateway, shared by all its connection sessions. The fan-out
feeds it every ``StoreStatus`` event; a session refuses a ``send`` while it says unavailable
(error ``unavailable``, retryable), so the client is told at once instead of waiting for an ack
that cannot come, and nothing piles up on the bus.

An "unavailable" that is not repeated within ``ttl_seconds`` expires by itself: the worker
repeats it every ``STORE_STATUS_INTERVAL_SECONDS`` while the outage lasts, so silence means it
died or its "available" was lost, and a gateway must not refuse sends forever because of that.
"""

from __future__ import annotations

from chase.clock import Clock
from chase.schemas import STORE_STATUS_INTERVAL_SECONDS, StoreStatus

#: Three missed re-announcements and an outage counts as over.
DEFAULT_TTL_SECONDS = 3 * STORE_STATUS_INTERVAL_SECONDS


class StoreAvailability:
    """Available until told otherwise; not thread-safe (one event loop feeds it)."""

    def __init__(self, clock: Clock, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._down_until: float | None = None
        #: The worker's last reason (for logs; clients get a fixed text).
        self.reason = ""

    def update(self, event: StoreStatus) -> bool:
        """Apply the worker's news; True when the availability changed (worth a log line)."""
        before = self.available
        self._down_until = None if event.available else self._clock.monotonic() + self._ttl
        self.reason = event.reason
        return self.available != before

    @property
    def available(self) -> bool:
        """False from an "unavailable" until an "available" or the ttl, whichever comes first."""
        return self._down_until is None or self._clock.monotonic() >= self._down_until
