"""Resource limits without a network: the outbox in bytes, connections per user, the log
flood filter, secrets kept out of log lines, and the open-file limit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from chase.bus.memory import MemoryBus
from chase.clock import FakeClock
from chase.logging import REDACTED, RateLimitFilter, redact_secrets
from chase.rlimit import raise_open_file_limit
from chase.schemas import ChatMessage, HistoryPageFrame, Limits, UserRef
from services.gateway.fanout import Connection, FanOut, TooManyConnections
from services.gateway.presence import PresenceTracker
from services.gateway.session import ConnectionSession

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = UserRef(id=1, username="alice")
LIMITS = Limits(max_body_chars=4000, max_frame_bytes=65536, rate_per_second=20.0, rate_burst=40)


class StuckSink:
    def __init__(self) -> None:
        self.closed: tuple[int, str] | None = None

    def write(self, frames: list[bytes]) -> None:  # pragma: no cover - never started
        raise AssertionError("not started")

    def backlog(self) -> int:
        return 0

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def big_page(n: int = 200, chars: int = 4000) -> HistoryPageFrame:
    messages = [
        ChatMessage(id=i + 1, sender=ALICE, recipient_id=None, body="x" * chars, created_at=NOW, client_msg_id=f"c{i}")
        for i in range(n)
    ]
    return HistoryPageFrame(messages=messages, has_more=True)


def session() -> ConnectionSession:
    return ConnectionSession(ALICE, "s-1", LIMITS, FakeClock(NOW))


async def test_the_outbox_is_bounded_in_bytes_not_only_in_frames() -> None:
    sink = StuckSink()
    conn = Connection(session(), sink, outbox_size=1000, outbox_bytes=4 * 1024 * 1024)
    page = big_page()  # about 850 KB, as the largest history page
    for _ in range(6):  # 6 pages: ~5 MB, far below 1000 frames
        conn.deliver(page)
    assert conn.queued_bytes <= 4 * 1024 * 1024
    await conn.finish()
    assert sink.closed is not None and sink.closed[0] == 4008


async def test_one_frame_larger_than_the_budget_still_reaches_a_reading_client() -> None:
    conn = Connection(session(), StuckSink(), outbox_size=10, outbox_bytes=65_536)
    conn.deliver(big_page(20))  # ~85 KB into an empty outbox
    assert not conn.closing and conn.queued_bytes > 65_536
    conn.deliver(big_page(1))
    assert conn.closing


async def test_connections_per_user_are_capped() -> None:
    bus = MemoryBus("t")
    await bus.start()
    fanout = FanOut(bus, PresenceTracker("gw-1", FakeClock(NOW), 15.0), max_connections_per_user=2)
    await fanout.start()
    try:
        conns = [Connection(session(), StuckSink(), 10) for _ in range(3)]
        await fanout.add(conns[0])
        await fanout.add(conns[1])
        with pytest.raises(TooManyConnections):
            await fanout.add(conns[2])
        await fanout.remove(conns[0])
        await fanout.add(conns[2])  # a place freed up
        for conn in conns:
            await fanout.remove(conn)
            await conn.finish()
    finally:
        await fanout.stop()
        await bus.close()


def record(text: str) -> logging.LogRecord:
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, text, None, None)


def test_a_flood_of_one_message_is_cut_to_a_burst_and_counted() -> None:
    now = [0.0]
    flood = RateLimitFilter(burst=5, interval=10.0, clock=lambda: now[0])
    passed = sum(flood.filter(record("socket.accept() out of system resource")) for _ in range(10_000))
    assert passed == 5
    assert flood.filter(record("another message"))
    now[0] = 10.0
    summary = record("socket.accept() out of system resource")
    assert flood.filter(summary)
    assert "9995 similar messages suppressed" in summary.getMessage()


def test_fields_named_like_secrets_are_redacted() -> None:
    event = redact_secrets(None, "info", {"event": "x", "password": "hunter2", "token": "t", "body": "hi",
                                          "user_id": 3})
    assert event == {"event": "x", "password": REDACTED, "token": REDACTED, "body": REDACTED, "user_id": 3}


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        limit = raise_open_file_limit(needed=min(200, hard))
        if hard != resource.RLIM_INFINITY:
            assert limit.soft == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert limit.advice is None
        if hard != resource.RLIM_INFINITY:
            # Never above the hard limit; the advice says how to raise that one.
            limit = raise_open_file_limit(needed=hard + 1)
            assert limit.soft == hard
            assert limit.advice is not None and f"ulimit -Hn {hard + 1}" in limit.advice
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_gateway_start_raises_the_limit_and_warns_when_max_connections_does_not_fit() -> None:
    """In a process of its own: its hard limit is lowered, which cannot be undone."""
    import resource
    import subprocess
    import sys

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip("the hard open-file limit here is below the test's")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 600))

    script = (
        "import resource; from chase.logging import configure; from chase.rlimit import ensure_open_file_limit\n"
        "configure('info')\n"
        "fits = ensure_open_file_limit(100)\n"
        "short = ensure_open_file_limit(1000)\n"
        "print('RESULT', fits.soft, fits.advice is None, short.soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], preexec_fn=limited, capture_output=True, text=True,  # noqa: PLW1509
                          timeout=60, check=True)
    output = done.stdout + done.stderr
    assert "RESULT 600 True 600 600" in output
    assert "open-file limit too low" in output and "ulimit -Hn 1256" in output
