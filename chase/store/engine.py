"""Building the async engine, and checking at start-up that the database answers."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chase.config import ConfigError


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url``; the caller disposes it (``await engine.dispose()``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: a database error quoted in a log must not carry the hashes or bodies
        # it was given.
        engine = create_async_engine(url, echo=echo, hide_parameters=True, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "mysql":
        query = dict(parsed.query)
        query.setdefault("charset", "utf8mb4")
        parsed = parsed.set(query=query)
        return create_async_engine(parsed, echo=echo, hide_parameters=True, pool_pre_ping=True, pool_recycle=3600)
    raise ConfigError(f"CHASE_DATABASE_URL: unsupported database {parsed.get_backend_name()!r}")


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
