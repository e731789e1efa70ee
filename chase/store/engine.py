"""Building the async engine, and checking at start-up that the database answers."""

from __future__ import annotations

import math
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chase.config import ConfigError


def create_engine(
    url: str,
    *,
    echo: bool = False,
    connect_timeout: float = 5.0,
    statement_timeout: float | None = 5.0,
    idle_transaction_timeout: float | None = None,
) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url``; the caller disposes it (``await engine.dispose()``).

    Every wait on the database is bounded: connecting (and waiting for a pooled connection)
    by ``connect_timeout``; on MariaDB each statement by ``statement_timeout``
    (``max_statement_time``), a lock wait by the same (``innodb_lock_wait_timeout``, whole
    seconds), and a transaction left idle (its client paused or frozen, holding locks) is
    ended by the server after ``idle_transaction_timeout`` (default: twice the statement
    timeout; whole seconds, at least 1); on SQLite a busy database is waited for
    ``statement_timeout`` (the busy timeout). A link that freezes without closing is the
    caller's to bound (the persistence worker bounds each batch). ``statement_timeout`` None
    sets no statement, lock or idle limit (migrations). On MariaDB every connection the pool
    hands out answers a ping first, or is replaced by a new one.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy = statement_timeout if statement_timeout is not None else 30.0
        engine = create_async_engine(url, echo=echo, hide_parameters=True, connect_args={"timeout": busy})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "mysql":
        query = dict(parsed.query)
        query.setdefault("charset", "utf8mb4")
        parsed = parsed.set(query=query)
        engine = create_async_engine(
            parsed,
            echo=echo,
            hide_parameters=True,
            # Pinged on every checkout by _ping_on_checkout instead (see there).
            pool_pre_ping=False,
            pool_recycle=3600,
            pool_timeout=connect_timeout,
            connect_args={"connect_timeout": max(1, round(connect_timeout))},
        )
        event.listen(engine.sync_engine, "checkout", _ping_on_checkout)
        if statement_timeout is not None:
            idle = idle_transaction_timeout if idle_transaction_timeout is not None else 2 * statement_timeout
            event.listen(engine.sync_engine, "connect", _mysql_session(statement_timeout, idle))
        return engine
    raise ConfigError(f"CHASE_DATABASE_URL: unsupported database {parsed.get_backend_name()!r}")


def _ping_on_checkout(dbapi_connection, _record, _proxy) -> None:  # noqa: ANN001 - a pool event
    """Hand out only a connection that answers; one that does not is replaced by a new one.

    SQLAlchemy's own ``pool_pre_ping`` replaces a connection only when the ping fails with a
    driver error it knows as a disconnect. On uvloop, a pooled connection whose link was cut
    (the database restarted, a network blip) fails its ping with the event loop's own
    ``RuntimeError`` ("unable to perform operation on <TCPTransport closed=True>"), which
    ``pool_pre_ping`` passes on to the caller: every such connection failed one request or
    batch after the database came back. Raising ``DisconnectionError`` here makes the pool
    drop it and connect afresh (whose failure, with the database still down, is the caller's).
    asyncmy names the same failure itself (MySQL error 2006) and is dropped the same way; both
    drivers are tested on uvloop (``tests/integration/on_uvloop``).
    """
    try:
        dbapi_connection.ping(False)
    except Exception as exc:  # noqa: BLE001 - whatever the reason, this connection is not usable
        raise sa.exc.DisconnectionError(f"a pooled connection did not answer: {exc!r}") from exc


def _mysql_session(statement_timeout: float, idle_transaction_timeout: float):  # noqa: ANN202 - an event listener
    lock_wait = max(1, round(statement_timeout))
    idle = max(1, math.ceil(idle_transaction_timeout))

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


#: MySQL/MariaDB error numbers: unknown database; access denied to a database; no privilege.
_ER_BAD_DB = 1049
_ER_DB_ACCESS_DENIED = 1044
_ER_DENIED = (_ER_DB_ACCESS_DENIED, 1045, 1142, 1227)


async def ensure_database(url: str) -> str | None:
    """On MySQL/MariaDB, create the database of ``url`` when the server says it does not exist
    (utf8mb4, binary collation: names compare as the application compares them).

    Returns one line saying what was created, or None when nothing was done (it exists, or
    SQLite, whose file is made on first use). Raises :class:`ConfigError` with the statement
    an administrator must run when the user may not create it, or when the server does not
    answer.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "mysql" or not parsed.database:
        return None
    engine = create_engine(url)
    try:
        async with engine.connect():
            return None
    except Exception as exc:  # noqa: BLE001 - any driver error means the same to the operator
        # A user without rights on a database is told "access denied" whether it exists or not.
        errno = _mysql_errno(exc)
        if errno not in (_ER_BAD_DB, _ER_DB_ACCESS_DENIED):
            raise ConfigError(f"CHASE_DATABASE_URL: cannot reach {_safe(engine)}: {_first_line(exc)}") from None
    finally:
        await engine.dispose()
    name = parsed.database
    server = create_engine(parsed.set(database="").render_as_string(hide_password=False))
    quoted = server.dialect.identifier_preparer.quote_identifier(name)
    create = f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    try:
        async with server.begin() as conn:
            await conn.execute(sa.text(create))
    except Exception as exc:  # noqa: BLE001
        if _mysql_errno(exc) in _ER_DENIED:
            user = parsed.username or "the user"
            missing = "does not exist" if errno == _ER_BAD_DB else f"does not exist or {user} may not use it"
            raise ConfigError(
                f"CHASE_DATABASE_URL: database {quoted} {missing}, and {user} may not create it; "
                f"as an administrator run: {create}; GRANT ALL ON {quoted}.* TO '{user}'@'%';"
            ) from None
        raise ConfigError(f"CHASE_DATABASE_URL: cannot create database {quoted}: {_first_line(exc)}") from None
    finally:
        await server.dispose()
    if errno != _ER_BAD_DB:
        return None  # it may have been there all along; the next connection tells
    return f"created database {quoted} (utf8mb4, utf8mb4_bin) on {parsed.host or 'localhost'}"


def _mysql_errno(exc: BaseException) -> int | None:
    args = getattr(getattr(exc, "orig", None), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _safe(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
