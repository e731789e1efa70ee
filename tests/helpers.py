"""Small helpers shared by the tests: free ports, and waiting without fixed sleeps."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import pytest

from chase.schemas import UserRef


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> None:  # noqa: ANN001
    """Poll ``predicate`` (sync or async) until true; fail the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``port``."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def make_users(engine, *names: str, created_at: datetime | None = None) -> list[UserRef]:  # noqa: ANN001
    """Insert users straight into the store (no auth service), returning their refs in order."""
    from chase.store.tables import users

    when = (created_at or datetime(2026, 1, 1, tzinfo=UTC)).replace(tzinfo=None)
    refs = []
    async with engine.begin() as conn:
        for name in names:
            result = await conn.execute(users.insert().values(username=name, password_hash="x", created_at=when))
            refs.append(UserRef(id=result.inserted_primary_key[0], username=name))
    return refs
