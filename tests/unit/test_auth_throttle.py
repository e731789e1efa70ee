"""The login throttle, on a fake clock."""

from __future__ import annotations

from chase.clock import FakeClock
from services.auth.throttle import LoginThrottle


def make(clock: FakeClock, **kwargs: object) -> LoginThrottle:
    options: dict = {"max_failures": 3, "window_seconds": 60.0, **kwargs}
    return LoginThrottle(clock, **options)


def test_blocks_after_max_failures_until_the_oldest_expires() -> None:
    clock = FakeClock()
    throttle = make(clock)
    for _ in range(2):
        throttle.record_failure("alice")
        clock.advance(10)
    assert throttle.retry_after("alice") is None
    throttle.record_failure("Alice")  # the third, at t=20, counts for the same name
    # Blocked until the oldest failure (t=0) leaves the 60 s window.
    assert throttle.retry_after("ALICE") == 40.0
    clock.advance(39.5)
    assert throttle.retry_after("alice") == 0.5
    clock.advance(0.5)
    assert throttle.retry_after("alice") is None


def test_success_resets_and_names_are_independent() -> None:
    clock = FakeClock()
    throttle = make(clock)
    for _ in range(3):
        throttle.record_failure("alice")
    assert throttle.retry_after("bob") is None
    throttle.reset("ALICE")
    assert throttle.retry_after("alice") is None


def test_memory_is_bounded() -> None:
    clock = FakeClock()
    throttle = make(clock, max_names=2, max_failures=1)
    throttle.record_failure("a")
    throttle.record_failure("b")
    throttle.record_failure("c")  # evicts the oldest live name
    assert throttle.retry_after("a") is None
    assert throttle.retry_after("b") is not None and throttle.retry_after("c") is not None
    clock.advance(61)
    throttle.record_failure("d")  # expired names are dropped first
    assert throttle.retry_after("b") is None and throttle.retry_after("d") is not None
