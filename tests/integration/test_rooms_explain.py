"""The room queries read only the rows they return: each is an index search, never a scan of
a table, on SQLite (EXPLAIN QUERY PLAN) and on MariaDB (EXPLAIN), over enough rows that a
scan would be the planner's choice if no index served."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from chase.store.tables import messages, room_conversation, room_members, rooms, users
from services.persistence.rooms import Window, members_query, rooms_of_query, sync_windows_query
from services.persistence.store import room_range

NOW = datetime(2026, 1, 1)
USERS, ROOMS, PER_ROOM, MESSAGES = 200, 100, 40, 20_000


async def _fill(engine) -> None:  # noqa: ANN001
    async with engine.begin() as conn:
        await conn.execute(users.insert(), [
            {"id": i, "username": f"u{i}", "password_hash": "x", "created_at": NOW} for i in range(1, USERS + 1)
        ])
        await conn.execute(rooms.insert(), [
            {"id": r, "name": f"r{r}", "owner_id": 1 + r % USERS, "open": False, "history": "joined",
             "member_count": PER_ROOM, "created_at": NOW}
            for r in range(1, ROOMS + 1)
        ])
        states = ("joined", "joined", "joined", "left", "invited")
        await conn.execute(room_members.insert(), [
            {"room_id": r, "user_id": 1 + (r * 7 + k) % USERS, "state": states[k % 5], "role": "member",
             "visible_from": 1, "visible_until": None, "updated_at": NOW}
            for r in range(1, ROOMS + 1) for k in range(PER_ROOM)
        ])
        rows = []
        for i in range(1, MESSAGES + 1):
            room = i % (ROOMS + 1)
            rows.append({
                "id": i, "sender_id": 1 + i % USERS, "recipient_id": None,
                "conversation": room_conversation(room) if room else "public", "body": "b",
                "client_msg_id": f"c{i}", "created_at": NOW,
            })
        await conn.execute(messages.insert(), rows)
    if engine.dialect.name == "mysql":
        async with engine.begin() as conn:
            for table in ("users", "rooms", "room_members", "messages"):
                await conn.exec_driver_sql(f"ANALYZE TABLE {table}")


async def _plan(engine, query: sa.Select) -> list[str]:  # noqa: ANN001
    """One line per table access: 'SEARCH ...' / 'SCAN ...' (SQLite), '<table> <type> <key>' (MariaDB)."""
    async with engine.connect() as conn:
        sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "sqlite":
            rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)).all()
            return [row[-1] for row in rows]
        rows = (await conn.exec_driver_sql("EXPLAIN " + sql)).mappings().all()
        return [f"{row['table']} {row['type']} {row['key']}" for row in rows]


def _searches_only(plan: list[str]) -> bool:
    for line in plan:
        # (A temporary b-tree sorts the rows found, e.g. a user's rooms from two index ranges,
        # invited and joined: it reads nothing more.)
        if line.startswith("SCAN") and "CONSTANT ROW" not in line:
            return False
        parts = line.split()
        if len(parts) == 3 and (parts[1] in ("ALL", "index") or parts[2] == "None"):
            return False
    return True


@pytest.mark.timeout(120)
async def test_room_reads_are_index_searches(migrated_engine) -> None:  # noqa: ANN001
    await _fill(migrated_engine)
    room, user = 17, 1 + (17 * 7) % USERS
    queries = {
        "a member's rooms": rooms_of_query(user),
        "a room's members": members_query(room),
        "a user's rooms for sync": sync_windows_query(user, 5_000),
        "a room's newest page": room_range(Window(room, 1, None)).order_by(messages.c.id.desc()).limit(51),
        "a room's page deep in history": room_range(Window(room, 1, None))
        .where(messages.c.id < 3_000).order_by(messages.c.id.desc()).limit(51),
        "a room's sync range": room_range(Window(room, 1, 15_000))
        .where(messages.c.id > 10_000).order_by(messages.c.id.asc()).limit(201),
    }
    for name, query in queries.items():
        plan = await _plan(migrated_engine, query)
        assert _searches_only(plan), (name, plan)
    # A user's rooms come from the index that skips the rooms they left. A room's members
    # too on SQLite; MariaDB's planner may prefer the primary key's range of the one room
    # (its rows of leavers included) while they are few, which is still that room's rows only.
    checked = [rooms_of_query(user), sync_windows_query(user, 0)]
    if migrated_engine.dialect.name == "sqlite":
        checked.append(members_query(room))
    for query in checked:
        plan = " ".join(await _plan(migrated_engine, query))
        assert "state" in plan, plan
