"""What the store adds for delivery, on SQLite and MariaDB: ``prev_id`` chains every
conversation, and the writer lease fences a deposed writer out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chase.clock import FakeClock
from chase.schemas import MessageSubmitted, UserRef
from services.persistence.lease import FencedOut, LeaseHeld
from services.persistence.store import MessageStore, Stored
from tests.helpers import make_users

NOW = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def submit(sender: UserRef, cmid: str, to: int | None = None) -> MessageSubmitted:
    return MessageSubmitted(sender=sender, recipient_id=to, body=cmid, client_msg_id=cmid, submitted_at=NOW)


def stored(results) -> list:  # noqa: ANN001
    assert all(isinstance(r, Stored) for r in results), results
    return [r.message for r in results]


async def test_prev_id_links_each_conversation_across_batches_and_reads(migrated_engine) -> None:
    store = MessageStore(migrated_engine, FakeClock(NOW))
    alice, bob, carol = await make_users(migrated_engine, "alice", "bob", "carol", created_at=NOW)
    first = stored(await store.store_batch([
        submit(alice, "p1"), submit(alice, "d1", to=bob.id), submit(bob, "p2"), submit(bob, "d2", to=alice.id),
    ]))
    second = stored(await store.store_batch([
        submit(carol, "p3"), submit(carol, "c1", to=alice.id), submit(alice, "d3", to=bob.id),
    ]))
    by_cmid = {m.client_msg_id: m for m in first + second}
    assert by_cmid["p1"].prev_id is None and by_cmid["d1"].prev_id is None and by_cmid["c1"].prev_id is None
    assert by_cmid["p2"].prev_id == by_cmid["p1"].id
    assert by_cmid["p3"].prev_id == by_cmid["p2"].id
    assert by_cmid["d2"].prev_id == by_cmid["d1"].id
    assert by_cmid["d3"].prev_id == by_cmid["d2"].id
    ids = [m.id for m in first + second]
    assert ids == sorted(ids)

    # A resend answers with the original, prev_id included; history and sync carry it too.
    again = stored(await store.store_batch([submit(alice, "d3", to=bob.id)]))
    assert again[0] == by_cmid["d3"]
    page = await store.sync(alice.id, 0, 50)
    assert {m.id: m.prev_id for m in page.messages} == {m.id: m.prev_id for m in first + second}
    history = await store.history(bob.id, alice.id, None, 50)
    assert [m.prev_id for m in history.messages] == [by_cmid["d2"].id, by_cmid["d1"].id, None]


async def test_a_deposed_writer_cannot_commit_and_a_live_lease_is_not_taken(migrated_engine) -> None:
    clock = FakeClock(NOW)
    alice, = await make_users(migrated_engine, "alice", created_at=NOW)
    old = MessageStore(migrated_engine, clock, writer_id="old", lease_seconds=3)
    new = MessageStore(migrated_engine, clock, writer_id="new", lease_seconds=3)
    stored(await old.store_batch([submit(alice, "a")]))
    assert old.epoch is not None

    # While the old writer's lease runs, nobody else takes it.
    with pytest.raises(LeaseHeld):
        await new.store_batch([submit(alice, "b")])
    # It lapses (the old writer was paused, say): the new writer takes it with a higher epoch.
    clock.advance(3)
    stored(await new.store_batch([submit(alice, "b")]))
    assert new.epoch is not None and new.epoch > old.epoch

    # The old writer resumes with its batch: fenced out, nothing committed, its epoch dropped.
    with pytest.raises(FencedOut):
        await old.store_batch([submit(alice, "c")])
    assert old.epoch is None
    page = await new.sync(alice.id, 0, 50)
    assert [m.client_msg_id for m in page.messages] == ["a", "b"]
    # The new writer goes on renewing; the old one waits for the lease like any standby.
    stored(await new.store_batch([submit(alice, "c")]))
    with pytest.raises(LeaseHeld):
        await old.store_batch([submit(alice, "d")])
