"""The Alembic migrations: up, down and up again on SQLite and MariaDB, and equal to tables.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from chase.store import migrate
from chase.store.engine import create_engine
from chase.store.tables import conversation_key, messages, metadata, users
from tests.conftest import MARIADB_URL, require_service

APP_TABLES = {"users", "sessions", "messages"}


async def _table_names(engine) -> set[str]:  # noqa: ANN001
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))


async def _differences(engine, target: sa.MetaData = metadata) -> list:  # noqa: ANN001
    def compare(sync_conn: sa.Connection) -> list:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, target)

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        assert APP_TABLES <= await _table_names(engine)
        await migrate.downgrade(engine, "base")
        assert not APP_TABLES & await _table_names(engine)
        await migrate.upgrade(engine)
        assert APP_TABLES <= await _table_names(engine)
    finally:
        await engine.dispose()


async def test_migrated_schema_matches_the_tables_module(migrated_engine) -> None:  # noqa: ANN001
    assert await _differences(migrated_engine) == []
    # The comparison does see a difference when there is one.
    changed = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["users"].append_column(sa.Column("nickname", sa.String(20), nullable=True))
    assert [diff[0] for diff in await _differences(migrated_engine, changed)] == ["add_column"]


@pytest.fixture
async def mariadb_engine(mariadb_url: str):  # noqa: ANN201
    engine = create_engine(mariadb_url)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


BODIES = [
    "emoji 😀🎉👩‍👩‍👧‍👦 and a flag 🇫🇷",
    "right to left: שלום עולם / مرحبا بالعالم",
    "combining: e\u0301 vs \u00e9, a\u0308\u0323, Z\u0351\u0358\u0334",
    "astral plane: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and CJK 漢字",
]


async def test_utf8mb4_bodies_round_trip_byte_exact_on_mariadb(mariadb_engine) -> None:  # noqa: ANN001
    now = datetime(2026, 1, 1)
    async with mariadb_engine.begin() as conn:
        user_id = (
            await conn.execute(sa.insert(users).values(username="alice", password_hash="x", created_at=now))
        ).inserted_primary_key[0]
        for number, body in enumerate(BODIES):
            await conn.execute(
                sa.insert(messages).values(
                    sender_id=user_id,
                    recipient_id=None,
                    conversation=conversation_key(user_id, None),
                    body=body,
                    client_msg_id=f"m{number}",
                    created_at=now,
                )
            )
    async with mariadb_engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(messages.c.body, sa.func.hex(messages.c.body)).order_by(messages.c.id))
        ).all()
    assert [row[0] for row in rows] == BODIES
    # The server holds exactly the UTF-8 bytes (not a double-encoded or lossy copy).
    assert [row[1] for row in rows] == [body.encode("utf-8").hex().upper() for body in BODIES]


@pytest.fixture
def missing_database() -> Iterator[tuple[str, str]]:
    """A MariaDB URL naming a database that does not exist yet (dropped afterwards)."""
    require_service("MariaDB", "127.0.0.1", 3306)
    import pymysql

    name = f"chase_t_{uuid.uuid4().hex[:12]}"
    try:
        yield name, MARIADB_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def _chase_migrate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str) -> tuple[int, str, str]:
    from chase.cli import main

    monkeypatch.setenv("CHASE_DATABASE_URL", url)
    status = main(["migrate"])
    out, err = capsys.readouterr()
    return status, out, err


def test_chase_migrate_creates_a_missing_database_and_says_so(
    missing_database: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pymysql

    name, url = missing_database
    status, out, err = _chase_migrate(monkeypatch, capsys, url)
    assert status == 0, err
    assert out.splitlines()[0] == f"created database `{name}` (utf8mb4, utf8mb4_bin) on 127.0.0.1"
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA"
                " WHERE SCHEMA_NAME = %s", (name,),
            )
            assert cur.fetchone() == ("utf8mb4", "utf8mb4_bin")
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (name,))
            assert APP_TABLES <= {row[0] for row in cur.fetchall()}
    finally:
        admin.close()
    # Run again: the database is there, nothing is created and nothing is said about it.
    status, out, err = _chase_migrate(monkeypatch, capsys, url)
    assert status == 0 and "created database" not in out, err


def test_chase_migrate_without_the_right_to_create_says_what_to_run(
    missing_database: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pymysql

    name, url = missing_database
    user, password = f"chase_u_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
        limited = url.replace("root@", f"{user}:{password}@")
        status, out, err = _chase_migrate(monkeypatch, capsys, limited)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        admin.close()
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    # The server tells a user without rights "access denied" whether the database exists or not.
    assert err.startswith(
        f"chase: CHASE_DATABASE_URL: database `{name}` does not exist or {user} may not use it, "
        f"and {user} may not create it; as an administrator run: "
    ), err
    assert f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" in err
    assert password not in err
