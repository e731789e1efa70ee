"""MessageStore against the real databases: SQLite and MariaDB (``migrated_engine``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from chase.clock import FakeClock
from chase.schemas import MessageSubmitted, UserRef
from chase.store.tables import messages
from services.persistence.errors import RejectCode
from services.persistence.store import MessageStore, Rejected, Stored
from tests.helpers import make_users

NOW = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def submit(sender: UserRef, cmid: str, body: str = "hi", to: int | None = None) -> MessageSubmitted:
    return MessageSubmitted(sender=sender, recipient_id=to, body=body, client_msg_id=cmid, submitted_at=NOW)


async def count_messages(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar_one()


@pytest.fixture
def store(migrated_engine) -> MessageStore:
    return MessageStore(migrated_engine, FakeClock(NOW), max_body_chars=100, page_max=50)


async def test_batch_is_stored_in_submission_order(migrated_engine, store):
    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    batch = [submit(alice, "a1", "one"), submit(bob, "b1", "two", to=alice.id), submit(alice, "a2", "three")]

    results = await store.store_batch(batch)

    assert all(isinstance(r, Stored) and not r.duplicate for r in results)
    ids = [r.message.id for r in results]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [r.message.body for r in results] == ["one", "two", "three"]
    second = results[1].message
    assert second.sender == bob and second.recipient_id == alice.id
    assert second.created_at == NOW and second.created_at.tzinfo is not None
    assert await count_messages(migrated_engine) == 3


async def test_resend_across_batches_returns_original(migrated_engine, store):
    (alice,) = await make_users(migrated_engine, "alice", created_at=NOW)
    [first] = await store.store_batch([submit(alice, "m1", "original")])

    [again] = await store.store_batch([submit(alice, "m1", "changed body")])

    assert isinstance(again, Stored) and again.duplicate
    assert again.message == first.message
    assert again.message.body == "original"
    assert await count_messages(migrated_engine) == 1


async def test_resend_within_one_batch_is_stored_once(migrated_engine, store):
    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    batch = [submit(alice, "m1", "x"), submit(bob, "m1", "same id, other sender"), submit(alice, "m1", "x")]

    results = await store.store_batch(batch)

    assert [r.duplicate for r in results] == [False, False, True]
    assert results[2].message == results[0].message
    assert results[1].message.id != results[0].message.id
    assert await count_messages(migrated_engine) == 2


async def test_unknown_recipient_rejected_without_affecting_others(migrated_engine, store):
    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    batch = [submit(alice, "m1", to=bob.id), submit(alice, "m2", to=999_999), submit(bob, "m3")]

    results = await store.store_batch(batch)

    assert isinstance(results[0], Stored) and isinstance(results[2], Stored)
    assert results[1] == Rejected(alice.id, "m2", RejectCode.RECIPIENT_UNKNOWN, "the recipient does not exist")
    assert await count_messages(migrated_engine) == 2


async def test_unknown_sender_and_bad_bodies_rejected(migrated_engine, store):
    (alice,) = await make_users(migrated_engine, "alice", created_at=NOW)
    ghost = UserRef(id=424242, username="ghost")
    batch = [submit(ghost, "g1"), submit(alice, "e1", "  \n\t"), submit(alice, "l1", "x" * 101), submit(alice, "ok")]

    results = await store.store_batch(batch)

    assert [getattr(r, "code", None) for r in results] == [
        RejectCode.SENDER_UNKNOWN,
        RejectCode.BODY_EMPTY,
        RejectCode.BODY_TOO_LONG,
        None,
    ]
    assert await count_messages(migrated_engine) == 1


async def test_message_to_oneself_is_allowed_and_private(migrated_engine, store):
    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    [note] = await store.store_batch([submit(alice, "n1", "note to self", to=alice.id)])

    assert isinstance(note, Stored)
    assert [m.id for m in (await store.history(alice.id, alice.id, None, 10)).messages] == [note.message.id]
    assert [m.id for m in (await store.sync(alice.id, 0, 10)).messages] == [note.message.id]
    assert (await store.sync(bob.id, 0, 10)).messages == []


async def test_row_stored_by_another_writer_is_answered_as_duplicate(migrated_engine, store):
    # E.g. a standby worker that took over stored it: the key, not the body, decides.
    (alice,) = await make_users(migrated_engine, "alice", created_at=NOW)
    async with migrated_engine.begin() as conn:
        await conn.execute(
            messages.insert().values(
                sender_id=alice.id, recipient_id=None, conversation="public", body="first writer",
                client_msg_id="race", created_at=NOW.replace(tzinfo=None),
            )
        )
    [result] = await store.store_batch([submit(alice, "race", "second writer")])
    assert isinstance(result, Stored) and result.duplicate and result.message.body == "first writer"
    assert await count_messages(migrated_engine) == 1


async def test_history_pages_newest_first_with_exact_has_more(migrated_engine, store):
    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    stored = await store.store_batch([submit(alice, f"p{i}", f"public {i}") for i in range(5)])
    ids = [r.message.id for r in stored]

    page1 = await store.history(bob.id, None, None, 2)
    page2 = await store.history(bob.id, None, page1.messages[-1].id, 2)
    page3 = await store.history(bob.id, None, page2.messages[-1].id, 2)

    assert [m.id for m in page1.messages] == ids[4:2:-1] and page1.has_more
    assert [m.id for m in page2.messages] == ids[2:0:-1] and page2.has_more
    assert [m.id for m in page3.messages] == ids[:1] and not page3.has_more
    exact = await store.history(bob.id, None, None, 5)
    assert len(exact.messages) == 5 and not exact.has_more


async def test_history_page_size_is_capped(migrated_engine, store):
    (alice,) = await make_users(migrated_engine, "alice", created_at=NOW)
    await store.store_batch([submit(alice, f"c{i}") for i in range(60)])
    page = await store.history(alice.id, None, None, 10_000)
    assert len(page.messages) == 50 and page.has_more


async def test_third_user_cannot_read_a_private_conversation(migrated_engine, store):
    alice, bob, carol = await make_users(migrated_engine, "alice", "bob", "carol", created_at=NOW)
    results = await store.store_batch(
        [submit(alice, "d1", "secret", to=bob.id), submit(bob, "d2", "reply", to=alice.id), submit(carol, "pub")]
    )
    secret_ids = {results[0].message.id, results[1].message.id}

    for with_user in (alice.id, bob.id, carol.id, None):
        page = await store.history(carol.id, with_user, None, 50)
        assert not secret_ids & {m.id for m in page.messages}
    carol_sync = await store.sync(carol.id, 0, 50)
    assert [m.id for m in carol_sync.messages] == [results[2].message.id]

    bobs_view = await store.history(bob.id, alice.id, None, 50)
    assert [m.body for m in bobs_view.messages] == ["reply", "secret"]
    assert {m.id for m in (await store.sync(alice.id, 0, 50)).messages} == secret_ids | {results[2].message.id}


async def test_sync_oldest_first_with_cursor(migrated_engine, store):
    alice, bob, carol = await make_users(migrated_engine, "alice", "bob", "carol", created_at=NOW)
    results = await store.store_batch(
        [
            submit(alice, "s1"),
            submit(carol, "s2", to=alice.id),  # not bob's
            submit(alice, "s3", to=bob.id),
            submit(bob, "s4", to=carol.id),
            submit(carol, "s5"),
        ]
    )
    visible = [results[i].message.id for i in (0, 2, 3, 4)]

    first = await store.sync(bob.id, 0, 2)
    rest = await store.sync(bob.id, first.messages[-1].id, 2)
    empty = await store.sync(bob.id, rest.messages[-1].id, 2)

    assert [m.id for m in first.messages] == visible[:2] and first.has_more
    assert [m.id for m in rest.messages] == visible[2:] and not rest.has_more
    assert empty.messages == [] and not empty.has_more


UNICODE_BODIES = [
    "emoji 😀👩‍👩‍👧‍👦🏳️‍🌈",
    "right-to-left: שלום עולם, مرحبا بالعالم",
    "combining: e\u0301 a\u0308 n\u0303 Z\u0337\u0322",
    "4-byte: 𝄞 𐍈 𠜎 🀄",
    "nul-free mix: ñ ß ø Ω 中文 \u200d\u200f",
]


async def test_unicode_bodies_round_trip_byte_exact(migrated_engine, store):
    (alice,) = await make_users(migrated_engine, "alice", created_at=NOW)
    results = await store.store_batch([submit(alice, f"u{i}", body) for i, body in enumerate(UNICODE_BODIES)])
    assert all(isinstance(r, Stored) for r in results)

    page = await store.history(alice.id, None, None, 50)
    read_back = [m.body.encode("utf-8") for m in reversed(page.messages)]
    assert read_back == [body.encode("utf-8") for body in UNICODE_BODIES]
    async with migrated_engine.connect() as conn:
        raw = (await conn.execute(sa.select(messages.c.body).order_by(messages.c.id))).scalars().all()
    assert [b.encode("utf-8") for b in raw] == [body.encode("utf-8") for body in UNICODE_BODIES]


def _commit_elsewhere(engine, sql: str, params: tuple) -> None:
    """Run ``sql`` on a separate, plain DB-API connection and commit: another writer."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        import sqlite3

        other = sqlite3.connect(url.database)
        sql = sql.replace("%s", "?")
    else:
        import pymysql

        other = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                                password=url.password or "", database=url.database, charset="utf8mb4")
    try:
        other.cursor().execute(sql, params)
        other.commit()
    finally:
        other.close()


async def test_race_with_another_writer_is_retried_as_duplicate(migrated_engine, store):
    # Another writer commits our key after our look-up and before our INSERT: the INSERT hits
    # the unique key, and the batch is run again instead of failing. (On SQLite the lease's
    # UPDATE holds the database's write lock, so nobody can commit in between at all.)
    if migrated_engine.url.get_backend_name() == "sqlite":
        pytest.skip("SQLite: the writer lease holds the database write lock for the whole batch")
    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    fired = []

    def sneak_in(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if not fired and statement.lstrip().upper().startswith("INSERT INTO MESSAGES"):
            fired.append(True)
            _commit_elsewhere(
                migrated_engine,
                "INSERT INTO messages (sender_id, recipient_id, conversation, body, client_msg_id, created_at)"
                " VALUES (%s, NULL, 'public', 'other writer', 'race', %s)",
                (alice.id, NOW.replace(tzinfo=None).isoformat(sep=" ")),
            )

    sa.event.listen(migrated_engine.sync_engine, "before_cursor_execute", sneak_in)
    try:
        results = await store.store_batch([submit(bob, "mine", "bob's"), submit(alice, "race", "ours")])
    finally:
        sa.event.remove(migrated_engine.sync_engine, "before_cursor_execute", sneak_in)

    assert fired
    assert isinstance(results[0], Stored) and not results[0].duplicate and results[0].message.body == "bob's"
    assert isinstance(results[1], Stored) and results[1].duplicate and results[1].message.body == "other writer"
    assert await count_messages(migrated_engine) == 2
