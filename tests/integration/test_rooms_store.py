"""Group rooms in the store, on SQLite and MariaDB (``migrated_engine``): membership changes
stored as events in order with messages, their errors, and who reads what."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from chase.clock import FakeClock
from chase.schemas import MessageSubmitted, RoomCommand, UserRef
from chase.store.tables import messages, room_members, rooms
from services.persistence.errors import RejectCode, RoomErrorCode
from services.persistence.room_commands import RoomCommands
from services.persistence.rooms import RoomError, RoomLimits, RoomReader
from services.persistence.store import MessageStore, Rejected
from tests.helpers import make_users

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
_ids = itertools.count(1)


def command(actor: UserRef, op: str, **fields: object) -> RoomCommand:
    return RoomCommand(command_id=f"room.{next(_ids)}", actor=actor, op=op, submitted_at=NOW, **fields)


def say(sender: UserRef, room_id: int, body: str) -> MessageSubmitted:
    return MessageSubmitted(
        sender=sender, recipient_id=None, room_id=room_id, body=body, client_msg_id=f"m{next(_ids)}", submitted_at=NOW
    )


@pytest.fixture
def store(migrated_engine) -> MessageStore:  # noqa: ANN001
    return MessageStore(migrated_engine, FakeClock(NOW), max_body_chars=100)


@pytest.fixture
def commands(store: MessageStore) -> RoomCommands:
    return RoomCommands(store, RoomLimits(name_max=20, topic_max=30, max_members=3))


@pytest.fixture
def reader(migrated_engine) -> RoomReader:  # noqa: ANN001
    return RoomReader(migrated_engine)


async def refused(commands: RoomCommands, cmd: RoomCommand) -> RoomErrorCode:
    with pytest.raises(RoomError) as caught:
        await commands.apply(cmd)
    return caught.value.code


async def test_membership_events_are_messages_in_the_rooms_order(migrated_engine, store, commands, reader) -> None:  # noqa: ANN001
    alice, bob, carol = await make_users(migrated_engine, "alice", "bob", "carol", created_at=NOW)
    created = await commands.apply(command(alice, "create", name="  Team  ", topic="plans"))
    room = created.room
    assert (room.name, room.topic, room.owner, room.role, room.member_count) == ("Team", "plans", alice, "owner", 1)
    assert created.message.body == "alice created the room Team" and created.message.prev_id is None

    [hello] = await store.store_batch([say(alice, room.id, "hello")])
    invited = await commands.apply(command(alice, "invite", room_id=room.id, user_id=bob.id))
    assert invited.user_id == bob.id and invited.room.role == "owner"
    assert invited.message.body == "alice invited bob"
    joined = await commands.apply(command(bob, "join", room_id=room.id))
    assert joined.room.role == "member" and joined.room.member_count == 2
    [after] = await store.store_batch([say(bob, room.id, "hi all")])

    chain = [created.message, hello.message, invited.message, joined.message, after.message]
    assert [m.prev_id for m in chain[1:]] == [m.id for m in chain[:-1]]
    assert all(m.room_id == room.id for m in chain)

    # alice reads everything; bob from his joining on; carol nothing, whatever she asks.
    page = await store.history(alice.id, None, None, 50, room_id=room.id)
    assert [m.id for m in page.messages] == [m.id for m in reversed(chain)]
    assert page.messages[2].event is not None and page.messages[2].event.user == bob
    page = await store.history(bob.id, None, None, 50, room_id=room.id)
    assert [m.id for m in page.messages] == [after.message.id, joined.message.id]
    with pytest.raises(RoomError) as caught:
        await store.history(carol.id, None, None, 50, room_id=room.id)
    assert caught.value.code == RoomErrorCode.ROOM_NOT_FOUND
    with pytest.raises(RoomError) as unknown:
        await store.history(carol.id, None, None, 50, room_id=room.id + 1000)
    assert (unknown.value.code, unknown.value.reason) == (caught.value.code, caught.value.reason)
    assert [m.id for m in (await store.sync(bob.id, 0, 50)).messages] == [joined.message.id, after.message.id]
    assert (await store.sync(carol.id, 0, 50)).messages == []
    assert (await store.history(carol.id, None, None, 50)).messages == []  # the public room has none

    listed = await reader.rooms_of(bob.id)
    assert [r.id for r in listed.rooms] == [room.id] and listed.as_of == after.message.id
    members = await reader.members(bob.id, room.id)
    assert [(m.user, m.role) for m in members.members] == [(alice, "owner"), (bob, "member")]
    with pytest.raises(RoomError):
        await reader.members(carol.id, room.id)


async def test_after_removal_nothing_new_by_any_read(migrated_engine, store, commands, reader) -> None:  # noqa: ANN001
    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    room = (await commands.apply(command(alice, "create", name="R", open=True))).room
    await commands.apply(command(bob, "join", room_id=room.id))
    [before] = await store.store_batch([say(alice, room.id, "before")])
    removed = await commands.apply(command(alice, "remove", room_id=room.id, user_id=bob.id))
    assert removed.user_id == bob.id and removed.room.member_count == 1
    [later] = await store.store_batch([say(alice, room.id, "after")])

    history = await store.history(bob.id, None, None, 50, room_id=room.id)
    assert later.message.id not in [m.id for m in history.messages]
    assert history.messages[0].id == removed.message.id  # he sees his own removal, then nothing
    older = await store.history(bob.id, None, later.message.id + 1, 50, room_id=room.id)
    assert [m.id for m in older.messages] == [m.id for m in history.messages]
    synced = await store.sync(bob.id, before.message.id, 50)
    assert [m.id for m in synced.messages] == [removed.message.id]
    assert (await store.sync(bob.id, removed.message.id, 50)).messages == []
    assert (await reader.rooms_of(bob.id)).rooms == []
    with pytest.raises(RoomError):
        await reader.members(bob.id, room.id)
    # Sending after removal is refused, and nothing is stored.
    [refusal] = await store.store_batch([say(bob, room.id, "still here?")])
    assert isinstance(refusal, Rejected) and refusal.code == RejectCode.ROOM_NOT_FOUND
    # An open room: he may come back, and reads from his new joining on (not what he missed).
    back = await commands.apply(command(bob, "join", room_id=room.id))
    assert [m.id for m in (await store.history(bob.id, None, None, 50, room_id=room.id)).messages] == [back.message.id]


async def test_whole_history_rooms_show_everything_to_new_members(migrated_engine, store, commands) -> None:  # noqa: ANN001
    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    room = (await commands.apply(command(alice, "create", name="Open book", history="all"))).room
    [early] = await store.store_batch([say(alice, room.id, "early")])
    await commands.apply(command(alice, "invite", room_id=room.id, user_id=bob.id))
    assert await refused_history(store, bob.id, room.id)  # invited reads nothing yet
    await commands.apply(command(bob, "join", room_id=room.id))
    ids = [m.id for m in (await store.history(bob.id, None, None, 50, room_id=room.id)).messages]
    assert early.message.id in ids and len(ids) == 4


async def refused_history(store: MessageStore, viewer: int, room_id: int) -> bool:
    try:
        await store.history(viewer, None, None, 50, room_id=room_id)
    except RoomError as exc:
        return exc.code == RoomErrorCode.ROOM_NOT_FOUND
    return False


async def test_bad_requests_get_their_codes_and_write_nothing(migrated_engine, store, commands) -> None:  # noqa: ANN001
    alice, bob, carol, dave = await make_users(migrated_engine, "alice", "bob", "carol", "dave", created_at=NOW)
    assert await refused(commands, command(alice, "create", name="   ")) == RoomErrorCode.ROOM_NAME_INVALID
    assert await refused(commands, command(alice, "create", name="x" * 21)) == RoomErrorCode.ROOM_NAME_INVALID
    assert await refused(commands, command(alice, "create", name="ok", topic="t" * 31)) == RoomErrorCode.ROOM_TOPIC_TOO_LONG
    room = (await commands.apply(command(alice, "create", name="R"))).room
    rid = room.id
    # Unknown room and a room one is not in answer the same.
    assert await refused(commands, command(bob, "invite", room_id=rid, user_id=carol.id)) == RoomErrorCode.ROOM_NOT_FOUND
    assert await refused(commands, command(bob, "invite", room_id=rid + 99, user_id=carol.id)) == RoomErrorCode.ROOM_NOT_FOUND
    assert await refused(commands, command(bob, "join", room_id=rid)) == RoomErrorCode.ROOM_NOT_FOUND  # not invited
    assert await refused(commands, command(alice, "invite", room_id=rid, user_id=424242)) == RoomErrorCode.USER_UNKNOWN
    assert await refused(commands, command(alice, "invite", room_id=rid, user_id=alice.id)) == RoomErrorCode.ALREADY_MEMBER
    await commands.apply(command(alice, "invite", room_id=rid, user_id=bob.id))
    assert await refused(commands, command(alice, "invite", room_id=rid, user_id=bob.id)) == RoomErrorCode.ALREADY_INVITED
    assert await refused(commands, command(bob, "leave", room_id=rid + 99)) == RoomErrorCode.ROOM_NOT_FOUND
    await commands.apply(command(bob, "join", room_id=rid))
    assert await refused(commands, command(bob, "join", room_id=rid)) == RoomErrorCode.ALREADY_MEMBER
    assert await refused(commands, command(bob, "remove", room_id=rid, user_id=alice.id)) == RoomErrorCode.ROOM_FORBIDDEN
    assert await refused(commands, command(alice, "remove", room_id=rid, user_id=alice.id)) == RoomErrorCode.ROOM_OWNER
    assert await refused(commands, command(alice, "leave", room_id=rid)) == RoomErrorCode.ROOM_OWNER
    assert await refused(commands, command(bob, "update", room_id=rid, name="mine")) == RoomErrorCode.ROOM_FORBIDDEN
    assert await refused(commands, command(alice, "role", room_id=rid, user_id=carol.id, role="admin")) == RoomErrorCode.NOT_MEMBER
    assert await refused(commands, command(alice, "role", room_id=rid, user_id=alice.id, role="member")) == RoomErrorCode.ROOM_OWNER
    assert await refused(commands, command(alice, "remove", room_id=rid, user_id=dave.id)) == RoomErrorCode.NOT_MEMBER
    # The member limit (3 here).
    for user in (carol, dave):
        await commands.apply(command(alice, "invite", room_id=rid, user_id=user.id))
    await commands.apply(command(carol, "join", room_id=rid))
    assert await refused(commands, command(dave, "join", room_id=rid)) == RoomErrorCode.ROOM_FULL
    async with migrated_engine.connect() as conn:
        count = (await conn.execute(sa.select(rooms.c.member_count).where(rooms.c.id == rid))).scalar_one()
        joined = (await conn.execute(sa.select(sa.func.count()).select_from(room_members).where(
            room_members.c.room_id == rid, room_members.c.state == "joined"))).scalar_one()
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(messages))).scalar_one()
    assert count == joined == 3
    # created, 3 invites, 2 joins: the refusals stored nothing.
    assert stored == 6


async def test_roles_and_ownership(migrated_engine, commands) -> None:  # noqa: ANN001
    alice, bob, carol = await make_users(migrated_engine, "alice", "bob", "carol", created_at=NOW)
    rid = (await commands.apply(command(alice, "create", name="R", open=True))).room.id
    for user in (bob, carol):
        await commands.apply(command(user, "join", room_id=rid))
    promoted = await commands.apply(command(alice, "role", room_id=rid, user_id=bob.id, role="admin"))
    assert promoted.message.body == "alice made bob an admin"
    # An admin removes a member but not another admin, and does not rename.
    await commands.apply(command(alice, "role", room_id=rid, user_id=carol.id, role="admin"))
    assert await refused(commands, command(bob, "remove", room_id=rid, user_id=carol.id)) == RoomErrorCode.ROOM_FORBIDDEN
    await commands.apply(command(alice, "role", room_id=rid, user_id=carol.id, role="member"))
    await commands.apply(command(bob, "remove", room_id=rid, user_id=carol.id))
    handed = await commands.apply(command(alice, "role", room_id=rid, user_id=bob.id, role="owner"))
    assert handed.room.owner == bob and handed.room.role == "admin"
    assert handed.message.body == "alice handed ownership to bob"
    renamed = await commands.apply(command(bob, "update", room_id=rid, name="Renamed", topic="new topic"))
    assert (renamed.room.name, renamed.room.topic) == ("Renamed", "new topic")
    assert await refused(commands, command(alice, "update", room_id=rid, topic="x")) == RoomErrorCode.ROOM_FORBIDDEN
    await commands.apply(command(alice, "leave", room_id=rid))  # no longer the owner


async def test_a_redelivered_command_stores_nothing_twice(migrated_engine, commands) -> None:  # noqa: ANN001
    (alice,) = await make_users(migrated_engine, "alice", created_at=NOW)
    cmd = command(alice, "create", name="Once")
    first = await commands.apply(cmd)
    again = await commands.apply(cmd)
    assert again.duplicate and again.message == first.message and again.room.id == first.room.id
    async with migrated_engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(rooms))).scalar_one() == 1


async def test_racing_joins_never_pass_the_limit(migrated_engine, commands) -> None:  # noqa: ANN001
    people = await make_users(migrated_engine, *[f"u{i}" for i in range(6)], created_at=NOW)
    rid = (await commands.apply(command(people[0], "create", name="R", open=True))).room.id
    outcomes = await asyncio.gather(
        *(commands.apply(command(user, "join", room_id=rid)) for user in people[1:]), return_exceptions=True
    )
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(done) == 2  # three members at most
    assert all(isinstance(o, RoomError) and o.code == RoomErrorCode.ROOM_FULL for o in outcomes if o not in done)


async def test_migration_0005_down_and_up_again(migrated_engine, store, commands) -> None:  # noqa: ANN001
    from chase.store import migrate

    alice, bob = await make_users(migrated_engine, "alice", "bob", created_at=NOW)
    room = (await commands.apply(command(alice, "create", name="R"))).room
    await store.store_batch([say(alice, room.id, "in the room")])
    [private] = await store.store_batch([MessageSubmitted(sender=alice, recipient_id=bob.id, body="dm",
                                                          client_msg_id="dm1", submitted_at=NOW)])
    await migrate.downgrade(migrated_engine, "0004")

    def tables(sync) -> set[str]:  # noqa: ANN001
        return set(sa.inspect(sync).get_table_names())

    async with migrated_engine.connect() as conn:
        names = await conn.run_sync(tables)
        left = (await conn.execute(sa.text("SELECT id FROM messages"))).scalars().all()
    assert not {"rooms", "room_members"} & names
    assert left == [private.message.id]  # room messages go with their rooms; the rest stays
    await migrate.upgrade(migrated_engine)
    again = await commands.apply(command(alice, "create", name="Again"))
    assert again.room.name == "Again"
