"""A rolling restart of the compose topology under load: every service, one after the other,
is stopped with SIGTERM (gateways close with 1001 and turn unready first, workers finish their
batch) and started again while two users keep sending. Clients are the real client core
(reconnect, resend with the same id, sync). Every message ends acknowledged, stored exactly
once, and in the transcript of every client that may see it."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.compose.load import ChatLoad
from tests.compose.stack import CHASE_SERVICES, Stack

pytestmark = pytest.mark.timeout(900)

#: Every service, the infrastructure last (their restart is the slowest).
ROLLING_ORDER = (*CHASE_SERVICES, "haproxy", "rabbitmq", "mariadb")


async def test_rolling_restart_under_load_loses_and_doubles_nothing(stack: Stack) -> None:
    def roll() -> dict[str, float]:
        took = {}
        for service in ROLLING_ORDER:
            started = time.monotonic()
            stack.compose("restart", "-t", "20", service, timeout=120)
            stack.wait_healthy(service, timeout=120)
            took[service] = round(time.monotonic() - started, 1)
        return took

    async with ChatLoad(stack) as load:
        await asyncio.sleep(1)
        took = await asyncio.to_thread(roll)
        await load.check()
        print(f"restart timings (s): {took}; messages sent: {len(load.sent)}")
