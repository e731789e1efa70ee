"""Readiness answers: every check at once, each bounded, and any failure names itself."""

from __future__ import annotations

import asyncio

from chase.bus.memory import MemoryBus
from chase.probes import bus_check, flag_check, readiness


async def test_all_checks_ok_is_ready() -> None:
    bus = MemoryBus()
    await bus.start()
    try:
        ok, answers = await readiness({"broker": bus_check(bus), "accepting": flag_check(lambda: True, "no")})
    finally:
        await bus.close()
    assert ok and answers == {"broker": "ok", "accepting": "ok"}


async def test_each_failure_is_named_with_its_reason() -> None:
    closed = MemoryBus()

    async def raises() -> str | None:
        raise ConnectionRefusedError("connection refused\nsecond line")

    async def hangs() -> str | None:
        await asyncio.Event().wait()
        return None

    ok, answers = await readiness({
        "broker": bus_check(closed),
        "draining": flag_check(lambda: False, "shutting down"),
        "database": raises,
        "slow": hangs,
    }, timeout=0.05)
    assert not ok
    assert answers == {
        "broker": "broker connection down",
        "draining": "shutting down",
        "database": "connection refused",
        "slow": "timed out",
    }
