"""The engine's bounds on MariaDB sessions: every statement, lock wait and idle transaction."""

from __future__ import annotations

import sqlalchemy as sa

from chase.store.engine import create_engine


async def session_limits(url: str, **kw: float) -> tuple[float, int, int]:
    engine = create_engine(url, **kw)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(sa.text(
                "SELECT @@session.max_statement_time, @@session.innodb_lock_wait_timeout, "
                "@@session.idle_transaction_timeout"
            ))).one()
    finally:
        await engine.dispose()
    return float(row[0]), int(row[1]), int(row[2])


async def test_an_idle_transaction_ends_after_twice_the_statement_timeout_unless_told(mariadb_url: str):
    assert await session_limits(mariadb_url, statement_timeout=5.0) == (5.0, 5, 10)
    # The persistence worker's: as long as its writer lease (whole seconds, rounded up).
    assert await session_limits(mariadb_url, statement_timeout=5.0, idle_transaction_timeout=2.5) == (5.0, 5, 3)
