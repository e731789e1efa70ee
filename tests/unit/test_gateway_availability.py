"""The gateway's view of the store's availability, sans-I/O, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

from chase.bus.consumer import MAX_RETRY_DELAY
from chase.clock import FakeClock
from chase.schemas import STORE_STATUS_INTERVAL_SECONDS, StoreStatus
from services.gateway.availability import DEFAULT_TTL_SECONDS, StoreAvailability


def status(available: bool, reason: str = "cannot connect to the database") -> StoreStatus:
    return StoreStatus(available=available, reason=reason, sent_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_available_until_told_otherwise_and_changes_are_reported_once() -> None:
    store = StoreAvailability(FakeClock())
    assert store.available
    assert store.update(status(True)) is False
    assert store.update(status(False)) is True
    assert not store.available and store.reason == "cannot connect to the database"
    assert store.update(status(False)) is False  # a re-announcement changes nothing
    assert store.update(status(True, "the database answers")) is True
    assert store.available


def test_an_outage_that_is_not_repeated_expires_after_the_ttl() -> None:
    clock = FakeClock()
    store = StoreAvailability(clock, ttl_seconds=15)
    store.update(status(False))
    clock.advance(14.9)
    assert not store.available
    clock.advance(0.1)
    assert store.available  # the worker died mid-outage, or its "available" was lost


def test_each_re_announcement_extends_the_outage() -> None:
    clock = FakeClock()
    store = StoreAvailability(clock, ttl_seconds=15)
    store.update(status(False))
    for _ in range(5):
        clock.advance(10)
        assert not store.available
        store.update(status(False))
    clock.advance(15)
    assert store.available
    assert store.update(status(False)) is True  # a new outage after the expiry is a change again


def test_default_ttl_outlasts_the_workers_re_announcements() -> None:
    # The worker repeats "unavailable" at most one retry pause after each interval.
    assert DEFAULT_TTL_SECONDS > STORE_STATUS_INTERVAL_SECONDS + MAX_RETRY_DELAY
