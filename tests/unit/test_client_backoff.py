"""The reconnect policy: full jitter within an exponential ceiling, then slow attempts for ever."""

from __future__ import annotations

import random

import pytest

from client.core.backoff import BackoffPolicy


class Extreme:
    """A random source that always picks one end of the range."""

    def __init__(self, high: bool) -> None:
        self.high = high
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b if self.high else a


def test_ceiling_doubles_then_stays_at_the_cap() -> None:
    policy = BackoffPolicy(base=0.5, cap=4.0, max_attempts=10)
    assert [policy.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_delay_is_drawn_uniformly_between_zero_and_the_ceiling() -> None:
    rng = Extreme(high=True)
    policy = BackoffPolicy(base=1.0, cap=10.0, rng=rng)
    assert policy.delay(3) == 4.0
    assert rng.calls == [(0.0, 4.0)]
    assert BackoffPolicy(base=1.0, cap=10.0, rng=Extreme(high=False)).delay(3) == 0.0


def test_delays_with_a_real_random_source_stay_in_bounds() -> None:
    policy = BackoffPolicy(base=0.25, cap=3.0, max_attempts=8, slow_cap=40.0, rng=random.Random(7))
    for attempt in range(1, 9):
        assert 0.0 <= policy.delay(attempt) <= policy.ceiling(attempt) <= 3.0
    for attempt in range(9, 200):
        assert 20.0 <= policy.delay(attempt) <= policy.ceiling(attempt) == 40.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert BackoffPolicy(base=1.0, cap=30.0, max_attempts=100_000).ceiling(10_000) == 30.0


def test_after_the_fast_attempts_come_slow_ones_for_ever_with_jitter() -> None:
    policy = BackoffPolicy(max_attempts=3, slow_cap=60.0, rng=Extreme(high=False))
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, False, True]
    assert [policy.delay(n) for n in (4, 5, 1_000)] == [30.0, 30.0, 30.0]
    assert BackoffPolicy(max_attempts=3, slow_cap=60.0, rng=Extreme(high=True)).delay(4) == 60.0


@pytest.mark.parametrize("kwargs", [{"base": 0}, {"base": 2, "cap": 1}, {"max_attempts": 0},
                                    {"slow_cap": 0}])
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_zero_is_refused() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy().delay(0)
