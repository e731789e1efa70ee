"""The Alembic migrations: up, down and up again on SQLite and MariaDB, and equal to tables.py."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from chase.store import migrate
from chase.store.engine import create_engine
from chase.store.tables import conversation_key, messages, metadata, users

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
