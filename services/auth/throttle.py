"""Login throttling: after too many failed logins for one name, refuse for a while.

Counted per lower-cased username (so the victim's name is protected whoever attacks it) on the
injected monotonic clock. In memory, per process: with several auth processes behind a load
balancer each counts alone, so the effective limit is multiplied by their number.
"""

from __future__ import annotations

from collections import deque

from chase.clock import Clock


class LoginThrottle:
    def __init__(self, clock: Clock, *, max_failures: int, window_seconds: float, max_names: int = 10_000) -> None:
        self._clock = clock
        self._max_failures = max_failures
        self._window = window_seconds
        self._max_names = max_names
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, username: str) -> float | None:
        """Seconds until ``username`` may try again, or None when it may try now.

        The caller must refuse the login (without checking the password) when this is not None.
        """
        recent = self._recent(username.lower())
        if recent is None or len(recent) < self._max_failures:
            return None
        return recent[0] + self._window - self._clock.monotonic()

    def record_failure(self, username: str) -> None:
        key = username.lower()
        recent = self._recent(key)
        if recent is None:
            self._make_room()
            recent = self._failures[key] = deque(maxlen=self._max_failures)
        recent.append(self._clock.monotonic())

    def reset(self, username: str) -> None:
        """A successful login forgets the name's failures."""
        self._failures.pop(username.lower(), None)

    def _recent(self, key: str) -> deque[float] | None:
        recent = self._failures.get(key)
        if recent is None:
            return None
        horizon = self._clock.monotonic() - self._window
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[key]
            return None
        return recent

    def _make_room(self) -> None:
        if len(self._failures) < self._max_names:
            return
        for key in list(self._failures):
            self._recent(key)  # drops names whose failures have all expired
        while len(self._failures) >= self._max_names:
            # Still full of live entries: forget the oldest name rather than grow without bound.
            del self._failures[next(iter(self._failures))]
