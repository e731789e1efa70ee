"""Building the async engine, and checking at start-up that the database answers."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chase.config import ConfigError


def create_engine(
    url: str, *, echo: bool = False, connect_timeout: float = 5.0, statement_timeout: float | None = 5.0
) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url``; the caller disposes it (``await engine.dispose()``).

    Every wait on the database is bounded: connecting (and waiting for a pooled connection)
    by ``connect_timeout``; on MariaDB each statement by ``statement_timeout``
    (``max_statement_time``), a lock wait by the same (``innodb_lock_wait_timeout``, whole
    seconds), and a transaction left idle (its client paused or frozen, holding locks) is
    ended by the server after twice that (``idle_transaction_timeout``); on SQLite a busy
    database is waited for ``statement_timeout`` (the busy timeout). A link that freezes
    without closing is the caller's to bound (the persistence worker bounds each batch).
    ``statement_timeout`` None sets no statement, lock or idle limit (migrations).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy = statement_timeout if statement_timeout is not None else 30.0
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": busy})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "mysql":
        query = dict(parsed.query)
        query.setdefault("charset", "utf8mb4")
        parsed = parsed.set(query=query)
        engine = create_async_engine(
            parsed,
            echo=echo,
            pool_pre_ping=True,
            pool_recycle=3600,
            pool_timeout=connect_timeout,
            connect_args={"connect_timeout": max(1, round(connect_timeout))},
        )
        if statement_timeout is not None:
            event.listen(engine.sync_engine, "connect", _mysql_session(statement_timeout))
        return engine
    raise ConfigError(f"CHASE_DATABASE_URL: unsupported database {parsed.get_backend_name()!r}")


def _mysql_session(statement_timeout: float):  # noqa: ANN202 - an event listener
    lock_wait = max(1, round(statement_timeout))
    idle = max(1, round(2 * statement_timeout))

    def on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
        cursor = dbapi_connection.cursor()
        cursor.execute(
            f"SET SESSION max_statement_time = {float(statement_timeout)}, "
            f"innodb_lock_wait_timeout = {lock_wait}, idle_transaction_timeout = {idle}"
        )
        cursor.close()

    return on_connect


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the one writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


async def check_reachable(engine: AsyncEngine) -> None:
    """Raise :class:`ConfigError` naming the setting when the database does not answer."""
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any driver error means the same to the operator
        safe_url = engine.url.render_as_string(hide_password=True)
        raise ConfigError(f"CHASE_DATABASE_URL: cannot reach {safe_url}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
