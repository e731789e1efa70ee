"""History and sync pages read only the rows they return, on SQLite and MariaDB.

Enough rows for the planners to matter (``bench.history.load_messages``: a deep public room, a
long private conversation, a viewer whose visible messages are sparse), then each query the
store runs is explained by the database itself:

- MariaDB: ``ANALYZE FORMAT=JSON`` runs the query and counts the rows each table access read
  (``r_rows`` per loop); every access to ``messages`` must go through the intended index (or
  the primary key, one row per id), and together they read no more than the page needs.
- SQLite: ``EXPLAIN QUERY PLAN`` must search ``messages`` only by the intended index (never
  scan it or sort it), and the virtual machine's instruction count stays proportional to the
  page, whatever its depth (the old queries walked thousands of rows for a deep page).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from bench.history import SPARSE_VIEWER, USERS, id_bounds, load_messages
from chase.store import migrate
from chase.store.engine import create_engine
from chase.store.tables import PUBLIC_CONVERSATION, messages
from services.persistence.store import batch_facts_query, history_query, messages_by_key_query, sync_query

ROWS = 30_000
HISTORY_LIMIT = 51  # a page of 50, and one more to know whether there are more
SYNC_LIMIT = 201
CONVERSATION = "ix_messages_conversation_id"
SENDER = "ix_messages_sender_id_id"
RECIPIENT = "ix_messages_recipient_id_id"
UNIQUE_KEY = "uq_messages_sender_id_client_msg_id"


@dataclass(frozen=True)
class Loaded:
    dialect: str
    url: str
    first_private: int
    last: int


@pytest.fixture(params=["sqlite", "mariadb"])
async def loaded(request: pytest.FixtureRequest) -> AsyncIterator[Loaded]:
    url = request.getfixturevalue(f"{request.param}_url")
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await load_messages(conn, ROWS)
        async with engine.begin() as conn:
            if request.param == "mariadb":
                # InnoDB samples statistics by itself, some time after a bulk load: now, for a
                # stable plan. SQLite has none unless ANALYZE is run, which ChaSe never does.
                await conn.execute(sa.text("ANALYZE TABLE messages, users"))
            first_private, last = await id_bounds(conn)
    finally:
        await engine.dispose()
    yield Loaded(request.param, url, first_private, last)


def _cases(data: Loaded) -> list[tuple[str, sa.Select, int, set[str]]]:
    """(label, query, its LIMIT, the indexes it may use)."""
    middle_public, middle_private = data.first_private // 2, (data.first_private + data.last) // 2
    return [
        ("public, first page", history_query(5, None, None, HISTORY_LIMIT), HISTORY_LIMIT, {CONVERSATION}),
        ("public, deep page", history_query(5, None, middle_public, HISTORY_LIMIT), HISTORY_LIMIT, {CONVERSATION}),
        ("private, first page", history_query(1, 2, None, HISTORY_LIMIT), HISTORY_LIMIT, {CONVERSATION}),
        ("private, deep page", history_query(2, 1, middle_private, HISTORY_LIMIT), HISTORY_LIMIT, {CONVERSATION}),
        ("sync, dense", sync_query(7, middle_public // 2, SYNC_LIMIT), SYNC_LIMIT, {CONVERSATION, SENDER, RECIPIENT}),
        ("sync, sparse", sync_query(SPARSE_VIEWER, data.first_private, SYNC_LIMIT), SYNC_LIMIT,
         {CONVERSATION, SENDER, RECIPIENT}),
        ("sync, at the end", sync_query(SPARSE_VIEWER, data.last, SYNC_LIMIT), SYNC_LIMIT,
         {CONVERSATION, SENDER, RECIPIENT}),
    ]


def _sql(query: sa.Select, dialect: str) -> str:
    compiled = query.compile(
        dialect=mysql.dialect() if dialect == "mariadb" else sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


# --- MariaDB ---------------------------------------------------------------------------------


def _table_accesses(node: object, found: list[dict]) -> list[dict]:
    if isinstance(node, dict):
        table = node.get("table")
        if isinstance(table, dict) and "table_name" in table:
            found.append(table)
        for value in node.values():
            _table_accesses(value, found)
    elif isinstance(node, list):
        for value in node:
            _table_accesses(value, found)
    return found


def _mariadb_reads(data: Loaded, sql: str) -> tuple[int, list[dict]]:
    """(rows the query returns, its accesses to ``messages`` as ANALYZE reports them)."""
    database = data.url.rsplit("/", 1)[1]
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=database)
    try:
        with conn.cursor() as cur:
            returned = cur.execute(sql)
            cur.execute("ANALYZE FORMAT=JSON " + sql)
            plan = json.loads(cur.fetchone()[0])
    finally:
        conn.close()
    return returned, [a for a in _table_accesses(plan, []) if a["table_name"] == "messages"]


# --- SQLite ----------------------------------------------------------------------------------


def _sqlite_connect(data: Loaded) -> sqlite3.Connection:
    return sqlite3.connect(Path(data.url.split("///", 1)[1]))


def _sqlite_plan(data: Loaded, sql: str) -> list[tuple[int, int, str]]:
    conn = _sqlite_connect(data)
    try:
        return [(node, parent, detail) for node, parent, _, detail in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    finally:
        conn.close()


def _sqlite_steps(data: Loaded, sql: str) -> tuple[int, int]:
    """(rows returned, virtual machine instructions executed, in hundreds)."""
    conn = _sqlite_connect(data)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    try:
        conn.set_progress_handler(count, 100)
        returned = len(conn.execute(sql).fetchall())
    finally:
        conn.close()
    return returned, steps


# --- the checks ------------------------------------------------------------------------------


async def test_every_page_reads_only_the_rows_it_returns(loaded: Loaded) -> None:
    for label, query, limit, indexes in _cases(loaded):
        sql = _sql(query, loaded.dialect)
        full = 0 if label == "sync, at the end" else limit  # the data fills every other page
        if loaded.dialect == "mariadb":
            returned, accesses = _mariadb_reads(loaded, sql)
            assert returned == full, label
            for access in accesses:
                by_id = access["access_type"] == "eq_ref" and access["key"] == "PRIMARY"
                assert by_id or access["key"] in indexes, (label, access)
                if not by_id:  # an index range on every column of the index, not its first alone
                    assert access["access_type"] in ("range", "ref"), (label, access)
            read = sum(a.get("r_rows") or 0 for a in accesses if a["access_type"] != "eq_ref")
            fetched = sum((a.get("r_rows") or 0) * (a.get("r_loops") or 0) for a in accesses if a["access_type"] == "eq_ref")
            # Each index range stops at the page's limit; the rows are then fetched by id.
            ranges = len([a for a in accesses if a["access_type"] != "eq_ref"])
            assert read <= ranges * limit, (label, returned, accesses)
            assert fetched <= limit, (label, returned, accesses)
        else:
            plan = _sqlite_plan(loaded, sql)
            details = [detail for _, _, detail in plan]
            searches = [d for d in details if d.startswith(("SEARCH messages", "SCAN messages"))]
            assert searches, (label, details)
            for detail in searches:
                by_id = "INTEGER PRIMARY KEY (rowid=?)" in detail
                assert by_id or any(f"INDEX {index} (" in detail for index in indexes), (label, details)
            # No index range or table is sorted: a sync orders only what its branches found
            # (at most their limits) and the page's own rows, looked up by id.
            parents_of_sorts = {parent for _, parent, d in plan if "TEMP B-TREE" in d}
            for _, parent, detail in plan:
                if parent in parents_of_sorts and detail.startswith(("SEARCH messages", "SCAN messages")):
                    assert "INTEGER PRIMARY KEY (rowid=?)" in detail, (label, details)
            if label.startswith(("public", "private")):  # one range scan in index order: no sort at all
                assert not parents_of_sorts, (label, details)
            returned, steps = _sqlite_steps(loaded, sql)
            assert returned == full, label
            # About a hundred instructions per row a page reads; the old sync query, which
            # gathered every visible row after the cursor and sorted them, took twenty times more.
            assert steps <= limit * len(indexes) // 2 + 5, (label, returned, steps)


async def test_the_pages_hold_what_the_viewer_may_see(loaded: Loaded) -> None:
    """The same pages as a plain reading of the visibility rule over every row."""
    engine = create_engine(loaded.url)
    try:
        async with engine.connect() as conn:
            everything = (
                await conn.execute(
                    sa.select(messages.c.id, messages.c.sender_id, messages.c.recipient_id, messages.c.conversation)
                    .order_by(messages.c.id)
                )
            ).all()
            for label, query, limit, _ in _cases(loaded):
                got = [row.id for row in (await conn.execute(query)).all()]
                expected = _expected(everything, query, limit, label, loaded)
                assert got == expected, label
    finally:
        await engine.dispose()


def _expected(rows: list, query: sa.Select, limit: int, label: str, data: Loaded) -> list[int]:
    middle_public, middle_private = data.first_private // 2, (data.first_private + data.last) // 2
    if label.startswith(("public", "private")):
        conversation, before = {
            "public, first page": (PUBLIC_CONVERSATION, None),
            "public, deep page": (PUBLIC_CONVERSATION, middle_public),
            "private, first page": ("dm:1:2", None),
            "private, deep page": ("dm:1:2", middle_private),
        }[label]
        ids = [r.id for r in rows if r.conversation == conversation and (before is None or r.id < before)]
        return sorted(ids, reverse=True)[:limit]
    viewer, after = {
        "sync, dense": (7, middle_public // 2),
        "sync, sparse": (SPARSE_VIEWER, data.first_private),
        "sync, at the end": (SPARSE_VIEWER, data.last),
    }[label]
    visible = [r.id for r in rows if r.id > after and (r.recipient_id is None or viewer in (r.sender_id, r.recipient_id))]
    return visible[:limit]


# --- the writer's look-ups ---------------------------------------------------------------------


def _batch_keys(data: Loaded) -> list[tuple[int, str]]:
    """A batch of 200 keys as the writer looks them up: 100 stored public messages (their
    senders have hundreds more each) and 100 new keys of the same senders."""
    stored = [(1 + seq % USERS, f"b-{seq}") for seq in range(1_000, 1_100)]
    return stored + [(sender, f"new-{n}") for n, (sender, _) in enumerate(stored)]


async def test_the_writers_look_ups_read_only_the_batchs_rows(loaded: Loaded) -> None:
    """A batch's resends are found by one probe of the unique key per message, not by reading
    every message its senders ever sent; the names and the last ids are single probes too."""
    keys = _batch_keys(loaded)
    query, params = messages_by_key_query("mysql" if loaded.dialect == "mariadb" else "sqlite", set(keys))
    lookup = _sql(query.params(**params), loaded.dialect)
    senders = sorted({sender for sender, _ in keys})
    facts = _sql(batch_facts_query(2).params(user_ids=senders, conversation_0="public", conversation_1="dm:1:2"),
                 loaded.dialect)
    if loaded.dialect == "mariadb":
        returned, accesses = _mariadb_reads(loaded, lookup)
        assert returned == 100
        assert [a["key"] for a in accesses] == [UNIQUE_KEY], accesses
        assert sum(a.get("r_rows") or 0 for a in accesses) <= len(keys), accesses
        _, accesses = _mariadb_reads(loaded, facts)
        assert all(a["access_type"] != "ALL" for a in accesses), accesses
        assert sum((a.get("r_rows") or 0) * (a.get("r_loops") or 1) for a in accesses) <= USERS, accesses
    else:
        searches = [d for _, _, d in _sqlite_plan(loaded, lookup) if "messages" in d]
        assert searches and all("(sender_id=? AND client_msg_id=?)" in d for d in searches), searches
        returned, steps = _sqlite_steps(loaded, lookup)
        assert returned == 100
        # The senders times the ids (100 x 200 probes here): more than the keys, never the table.
        assert steps <= len(keys) * 10, steps
        plan = [d for _, _, d in _sqlite_plan(loaded, facts)]
        assert not [d for d in plan if d.startswith("SCAN") and "CONSTANT ROW" not in d], plan


async def test_the_resend_look_up_keeps_to_the_unique_key_when_statistics_are_stale(mariadb_url: str) -> None:
    """A table that grew since MariaDB last sampled it looks empty to the planner: given the
    choice, it read the senders first, then every message each of them ever sent."""
    engine = create_engine(mariadb_url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            # The statistics stay those of the empty table, as between two of InnoDB's samples.
            await conn.execute(sa.text("ALTER TABLE messages STATS_AUTO_RECALC=0"))
            await conn.execute(sa.text("ANALYZE TABLE messages"))
            await load_messages(conn, 5_000)
            first_private, last = await id_bounds(conn)
    finally:
        await engine.dispose()
    data = Loaded("mariadb", mariadb_url, first_private, last)
    keys = _batch_keys(data)
    query, params = messages_by_key_query("mysql", set(keys))
    returned, accesses = _mariadb_reads(data, _sql(query.params(**params), "mariadb"))
    assert returned == 100
    assert [(a["key"], a["access_type"]) for a in accesses] == [(UNIQUE_KEY, "range")], accesses
    assert sum(a.get("r_rows") or 0 for a in accesses) <= len(keys), accesses
