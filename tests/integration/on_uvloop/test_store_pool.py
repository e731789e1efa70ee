"""The engine's pool after the database link was cut and came back, on uvloop."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from chase.store.engine import create_engine
from tests.faults import TcpForwarder
from tests.helpers import wait_until

POOLED = 3


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_connections_pooled_before_a_cut_are_replaced_not_handed_out(mariadb_url: str, driver: str):
    target = sa.engine.make_url(mariadb_url).set(drivername=f"mysql+{driver}")
    async with TcpForwarder(target.host or "127.0.0.1", target.port or 3306) as link:
        engine = create_engine(target.set(port=link.port).render_as_string(hide_password=False))
        try:
            release = asyncio.Event()

            async def hold() -> None:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
                    await release.wait()

            holders = [asyncio.create_task(hold()) for _ in range(POOLED)]
            await wait_until(lambda: link.accepted >= POOLED)
            release.set()
            await asyncio.gather(*holders)
            await link.cut()
            await asyncio.sleep(0.2)  # the resets reach the pooled connections
            await link.restore()
            # Each checkout meets a connection whose link is gone (uvloop: its transport is
            # closed): the pool must drop it and connect afresh, not fail the caller.
            for _ in range(POOLED + 1):
                async with engine.connect() as conn:
                    assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
        finally:
            await engine.dispose()
