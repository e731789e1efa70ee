"""Storing submitted messages in batches, and reading history and sync pages back.

One batch is one transaction with one bulk INSERT. A resend (same sender, same
``client_msg_id``) stores nothing and answers with the original message, whether the original
is in an earlier batch or earlier in the same batch.

Private messages to oneself are allowed: they form the conversation ``dm:<id>:<id>`` that only
that user can read ("notes to self", as most chat apps offer). Refusing them would protect
nobody, and a client listing every user, the viewer included, then needs no special case.

Functions ending in ``_txn`` run inside a transaction the caller owns and take its connection.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chase.clock import Clock
from chase.logging import get_logger
from chase.schemas import (
    MAX_PAGE,
    ChatMessage,
    Encrypted,
    MessagePage,
    MessageSubmitted,
    RoomEvent,
    UserRef,
    encrypted_problem,
)
from chase.store.tables import (
    PUBLIC_CONVERSATION,
    WRITER_LEASE,
    conversation_key,
    messages,
    room_conversation,
    room_of_conversation,
    users,
)
from chase.text import is_blank
from services.persistence.errors import RejectCode
from services.persistence.lease import FencedOut, hold_lease_txn
from services.persistence.rooms import Window, joined_pairs_txn, sync_windows_txn, window_txn

log = get_logger(__name__)

T = TypeVar("T")

#: (sender_id, client_msg_id): what makes a submit idempotent.
MessageKey = tuple[int, str]


@dataclass(frozen=True)
class Stored:
    """The message is committed; ``duplicate`` when it had been stored before this batch."""

    message: ChatMessage
    duplicate: bool = False


@dataclass(frozen=True)
class Rejected:
    """The message was not stored and never will be: the sender must be told ``code``."""

    sender_id: int
    client_msg_id: str
    code: RejectCode
    reason: str


StoreResult = Stored | Rejected

#: The columns of a message, in the order `_row_to_message` unpacks them.
_MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.sender_id,
    users.c.username,
    messages.c.recipient_id,
    messages.c.body,
    messages.c.created_at,
    messages.c.client_msg_id,
    messages.c.prev_id,
    messages.c.conversation,
    messages.c.event,
    messages.c.ciphertext,
)
_WITH_SENDER = messages.join(users, users.c.id == messages.c.sender_id)
_INSERT = messages.insert()


class MessageStore:
    """The persistence service's view of the ``messages`` table."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        max_body_chars: int = 4000,
        page_max: int = MAX_PAGE,
        max_attempts: int = 3,
        writer_id: str | None = None,
        lease_seconds: float = 3.0,
    ) -> None:
        """``writer_id`` names this writer in the lease (unique per process; default random);
        ``lease_seconds`` is how long the lease outlives the last batch that renewed it."""
        self._engine = engine
        self.writer_id = writer_id or f"writer-{uuid.uuid4().hex[:12]}"
        self._lease_seconds = lease_seconds
        #: The lease epoch this writer holds (None: not taken yet, or lost).
        self.epoch: int | None = None
        self._clock = clock
        self._max_body_chars = max_body_chars
        self._page_max = max(1, min(page_max, MAX_PAGE))
        self._max_attempts = max(1, max_attempts)

    # --- writing ----------------------------------------------------------------------------

    async def store_batch(self, submitted: Sequence[MessageSubmitted]) -> list[StoreResult]:
        """Store a batch in one transaction; one result per input, in input order.

        When this returns, every :class:`Stored` result is committed: the caller may now
        publish it. Raises on a database failure (nothing of the batch is committed, so the
        whole batch can be retried: resends are idempotent), :class:`FencedOut` when another
        writer took the lease over (the caller must step down), :class:`LeaseHeld` while
        another writer's lease runs.
        """
        results: list[StoreResult | None] = [None] * len(submitted)
        first_of: dict[MessageKey, int] = {}
        repeats: list[tuple[int, int]] = []
        for index, item in enumerate(submitted):
            problem = self._body_problem(item)
            if problem is not None:
                results[index] = problem
                continue
            key = (item.sender.id, item.client_msg_id)
            if key in first_of:
                repeats.append((index, first_of[key]))
            else:
                first_of[key] = index
        unique = list(first_of.values())
        outcomes = await self._store_unique([submitted[i] for i in unique])
        for index, outcome in zip(unique, outcomes, strict=True):
            results[index] = outcome
        for index, first in repeats:
            original = results[first]
            results[index] = Stored(original.message, duplicate=True) if isinstance(original, Stored) else original
        assert all(result is not None for result in results), "every input gets a result"
        return results  # type: ignore[return-value]

    def _body_problem(self, item: MessageSubmitted) -> Rejected | None:
        if item.ciphertext is not None:
            # End-to-end encrypted: no plaintext, only a bounded ciphertext (the gateway's rule).
            problem = encrypted_problem(item.body, item.ciphertext, item.recipient_id)
            if problem is None:
                return None
            return Rejected(item.sender.id, item.client_msg_id, RejectCode.ENCRYPTED_INVALID, problem)
        if is_blank(item.body):
            return Rejected(item.sender.id, item.client_msg_id, RejectCode.BODY_EMPTY, "the message is empty")
        if len(item.body) > self._max_body_chars:
            return Rejected(
                item.sender.id,
                item.client_msg_id,
                RejectCode.BODY_TOO_LONG,
                f"the message is longer than {self._max_body_chars} characters",
            )
        return None

    async def _store_unique(self, candidates: list[MessageSubmitted]) -> list[StoreResult]:
        if not candidates:
            return []
        for attempt in range(1, self._max_attempts + 1):
            created_at = _naive_utc(self._clock.now())
            try:
                async with self._engine.begin() as conn:
                    # First statement: the lease row's lock is held until COMMIT, so no other
                    # writer commits in between and ids follow commit order.
                    epoch = await hold_lease_txn(
                        conn, WRITER_LEASE, self.writer_id, self.epoch, created_at, self._lease_seconds
                    )
                    results = await store_unique_txn(conn, candidates, created_at)
                self._held(epoch)
                return results
            except FencedOut:
                self.epoch = None
                raise
            except IntegrityError:
                # Another writer stored one of these keys (or deleted a user) between our
                # look-up and our INSERT. Nothing was committed; running the batch again sees
                # the new rows as duplicates instead of failing the same way forever.
                if attempt == self._max_attempts:
                    raise
                log.warning("store_batch_conflict_retrying", attempt=attempt, size=len(candidates))
        raise AssertionError("unreachable")

    async def write(self, work: Callable[[AsyncConnection, datetime], Awaitable[T]]) -> T:
        """Run ``work(conn, now)`` in one transaction that holds the writer lease, like a
        batch: whatever it stores is ordered with every message (ids follow commit order).
        Raises what ``work`` raises (nothing is committed then), and :class:`FencedOut` /
        :class:`LeaseHeld` as :meth:`store_batch` does."""
        now = _naive_utc(self._clock.now())
        try:
            async with self._engine.begin() as conn:
                epoch = await hold_lease_txn(conn, WRITER_LEASE, self.writer_id, self.epoch, now, self._lease_seconds)
                result = await work(conn, now)
        except FencedOut:
            self.epoch = None
            raise
        self._held(epoch)
        return result

    def _held(self, epoch: int) -> None:
        """A transaction holding the lease ``epoch`` committed; a new epoch is a takeover."""
        if epoch != self.epoch:
            log.info("writer_lease_taken", epoch=epoch, writer=self.writer_id)
        self.epoch = epoch

    async def probe(self) -> None:
        """Return when the database answers a trivial query; raise its error when it does not."""
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # --- reading ----------------------------------------------------------------------------

    async def history(
        self,
        viewer_id: int,
        with_user_id: int | None,
        before_id: int | None,
        limit: int,
        room_id: int | None = None,
    ) -> MessagePage:
        """One page of a conversation the viewer is in, newest first.

        ``with_user_id`` None is the public room; otherwise the viewer's own private
        conversation with that user, so no argument can reach someone else's. ``room_id``: a
        group room, within the viewer's window of it (raises ``RoomError`` room_not_found
        when they have none). For the next (older) page, ask again with ``before_id`` = the
        last message's id while ``has_more``.
        """
        size = self._page_size(limit)
        if room_id is not None:
            async with self._engine.connect() as conn:
                window = await window_txn(conn, viewer_id, room_id)
                upper = before_id if window.high is None else min(before_id or window.high + 1, window.high + 1)
                query = room_range(window).order_by(messages.c.id.desc()).limit(size + 1)
                if upper is not None:
                    query = query.where(messages.c.id < upper)
                rows = (await conn.execute(query)).all()
            return _to_page(rows, size)
        return await self._page(history_query(viewer_id, with_user_id, before_id, size + 1), size)

    async def sync(self, viewer_id: int, after_id: int, limit: int) -> MessagePage:
        """Everything the viewer may see with an id above ``after_id``, oldest first.

        That is the public room, the private messages the viewer sent or received, and each
        group room within the viewer's window of it. While ``has_more``, ask again with
        ``after_id`` = the last message's id.
        """
        size = self._page_size(limit)
        async with self._engine.connect() as conn:
            windows = await sync_windows_txn(conn, viewer_id, after_id)
            # Public, sent and received (one's own room messages among the sent: always within
            # one's window), then one range of the (conversation, id) index per room, each cut
            # at the page size: the page's first rows are among the union of all of them.
            rows = (await conn.execute(sync_query(viewer_id, after_id, size + 1))).all()
            if not windows:
                return _to_page(rows, size)
            found = {row[0]: row for row in rows}  # by id, the first column
            for window in windows:
                query = room_range(window).where(messages.c.id > after_id).order_by(messages.c.id.asc()).limit(size + 1)
                found.update((row[0], row) for row in (await conn.execute(query)).all())
        return _to_page([found[key] for key in sorted(found)], size)

    def _page_size(self, limit: int) -> int:
        return max(1, min(limit, self._page_max))

    async def _page(self, query: sa.Select, size: int) -> MessagePage:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return _to_page(rows, size)


def _to_page(rows: Sequence[sa.Row], size: int) -> MessagePage:
    senders: dict[tuple[int, str], UserRef] = {}
    return MessagePage(messages=[_row_to_message(row, senders) for row in rows[:size]], has_more=len(rows) > size)


def room_range(window: Window) -> sa.Select:
    """A room's messages within one reader's window: one range of the (conversation, id) index."""
    query = _by_index(
        sa.select(*_MESSAGE_COLUMNS)
        .select_from(_WITH_SENDER)
        .where(messages.c.conversation == room_conversation(window.room_id), messages.c.id >= window.low),
        "ix_messages_conversation_id",
    )
    return query if window.high is None else query.where(messages.c.id <= window.high)


# --- the read queries --------------------------------------------------------------------------
#
# Each page reads only the rows it returns: one index range scan per page, in id order, that
# stops after ``limit`` rows. The planners need help to see it. MariaDB, asked for
# ``conversation = ? AND id < ? ORDER BY id DESC``, may look the conversation up alone and walk
# it back from its newest row (700 ms deep in a room of a million); the index hint makes it
# range-scan both columns. A sync's three kinds of visible message (public, sent, received)
# sit in three indexes; one OR over them makes both databases gather every match after the
# cursor and sort, so each kind is its own bounded range scan, and only their few ids are
# merged. ``tests/integration/test_persistence_plans.py`` checks the plans with EXPLAIN.


def _by_index(query: sa.Select, index: str) -> sa.Select:
    return query.with_hint(messages, f"FORCE INDEX ({index})", "mysql")


def history_query(viewer_id: int, with_user_id: int | None, before_id: int | None, limit: int) -> sa.Select:
    """The newest ``limit`` messages of the viewer's conversation with ``with_user_id`` (None:
    the public room) below ``before_id``, newest first: a range scan of (conversation, id)."""
    query = (
        sa.select(*_MESSAGE_COLUMNS)
        .select_from(_WITH_SENDER)
        .where(messages.c.conversation == conversation_key(viewer_id, with_user_id))
        .order_by(messages.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(messages.c.id < before_id)
    return _by_index(query, "ix_messages_conversation_id")


def sync_query(viewer_id: int, after_id: int, limit: int) -> sa.Select:
    """The first ``limit`` messages the viewer may see above ``after_id``, oldest first.

    The first ``limit`` of each kind (public, sent, received), by its own index; their union
    (a message to oneself is both sent and received) holds the first ``limit`` of all, since
    each of those is among the first ``limit`` of its own kind.
    """
    kinds = [
        (messages.c.conversation == PUBLIC_CONVERSATION, "ix_messages_conversation_id"),
        (messages.c.sender_id == viewer_id, "ix_messages_sender_id_id"),
        (messages.c.recipient_id == viewer_id, "ix_messages_recipient_id_id"),
    ]
    branches = []
    for condition, index in kinds:
        branch = _by_index(
            sa.select(messages.c.id).where(condition, messages.c.id > after_id).order_by(messages.c.id).limit(limit),
            index,
        ).subquery()
        # Wrapped: SQLite allows ORDER BY / LIMIT only on a whole compound, not on its parts.
        branches.append(sa.select(branch.c.id))
    visible = sa.union(*branches).order_by("id").limit(limit).subquery("visible")
    return (
        sa.select(*_MESSAGE_COLUMNS)
        .select_from(visible.join(messages, messages.c.id == visible.c.id).join(users, users.c.id == messages.c.sender_id))
        .order_by(messages.c.id)
    )


async def store_unique_txn(
    conn: AsyncConnection, candidates: Sequence[MessageSubmitted], created_at: datetime
) -> list[StoreResult]:
    """Store messages whose keys are distinct; one result per candidate, in order.

    Runs inside the caller's transaction, which must hold the writer lease (see
    :mod:`services.persistence.lease`): ids are given here, one above the largest, in
    submission order, and each new message's ``prev_id`` is the previous id in its
    conversation. Results are only true once the transaction commits.

    Three statements whatever the batch (four with room messages): the look-up of resends,
    one read of everything else the batch needs (:func:`batch_facts_txn`), and the INSERT.
    """
    keys = [(item.sender.id, item.client_msg_id) for item in candidates]
    existing = await messages_by_key_txn(conn, keys)
    conversations = [conversation_key(item.sender.id, item.recipient_id, item.room_id) for item in candidates]
    user_ids = {item.sender.id for item in candidates}
    user_ids.update(item.recipient_id for item in candidates if item.recipient_id is not None)
    facts = await batch_facts_txn(conn, user_ids, set(conversations))
    names = facts.names
    # Membership is checked in the transaction that stores the message, by the one writer
    # that also applies membership changes: a message is stored only while its sender is in.
    members = await joined_pairs_txn(
        conn, {(item.room_id, item.sender.id) for item in candidates if item.room_id is not None}
    )

    outcomes: list[StoreResult | None] = []
    new_rows: list[dict[str, object]] = []
    top, heads = facts.top, dict(facts.heads)
    for item, key, conversation in zip(candidates, keys, conversations, strict=True):
        outcome = _classify(item, existing.get(key), names, members)
        outcomes.append(outcome)
        if outcome is None:
            top += 1
            new_rows.append(_new_row(item, conversation, created_at, top, heads.get(conversation)))
            heads[conversation] = top
    if not new_rows:
        return outcomes  # type: ignore[return-value]
    # One executemany in submission order: the driver sends it as one multi-row INSERT.
    await conn.execute(_INSERT, new_rows)
    fresh = iter(new_rows)
    created = _aware_utc(created_at)
    senders = {user_id: UserRef(id=user_id, username=name) for user_id, name in names.items()}
    return [
        Stored(_inserted_message(next(fresh), item, senders[item.sender.id], created)) if outcome is None else outcome
        for item, outcome in zip(candidates, outcomes, strict=True)
    ]


@dataclass(frozen=True)
class BatchFacts:
    """What a batch must know to be stored, read in its transaction under the writer lease."""

    #: The largest message id (0 for none): new ids follow it.
    top: int
    #: The largest id of each conversation asked about that has one (the next one's prev_id).
    heads: dict[str, int]
    #: The usernames of the users asked about that exist.
    names: dict[int, str]


async def batch_facts_txn(conn: AsyncConnection, user_ids: Iterable[int], conversations: Iterable[str]) -> BatchFacts:
    """The largest id, the last id of each of ``conversations`` and the names of ``user_ids``,
    in one statement (:func:`batch_facts_query`)."""
    names_asked = sorted(set(conversations))
    params: dict[str, object] = {f"conversation_{n}": name for n, name in enumerate(names_asked)}
    params["user_ids"] = sorted(set(user_ids))
    top, heads, names = 0, {}, {}
    for kind, number, name in (await conn.execute(batch_facts_query(len(names_asked)), params)).all():
        if kind == "user":
            names[number] = name
        elif number is None:
            continue  # an empty table, or a conversation with no message yet
        elif kind == "head":
            heads[name] = number
        else:
            top = number
    return BatchFacts(top, heads, names)


@functools.lru_cache(maxsize=64)
def batch_facts_query(conversations: int) -> sa.CompoundSelect:
    """Rows of (kind, number, name): ("top", the largest id, None), ("head", the last id,
    conversation) for each of ``conversations`` parameters ``conversation_<n>``, and ("user",
    id, username) for each existing user of the list parameter ``user_ids``.

    Each part is a single probe of an index (the primary key, or ``(conversation, id)`` for a
    conversation's ``MAX``), however large the tables. Built once per number of conversations
    and kept: making and keying a statement costs more than running it.
    """
    last_id = sa.select(sa.func.max(messages.c.id))
    parts: list[sa.Select] = [
        sa.select(sa.literal("top").label("kind"), last_id.scalar_subquery().label("number"), sa.null().label("name"))
    ]
    for n in range(conversations):
        name = sa.bindparam(f"conversation_{n}", type_=sa.String(64))
        parts.append(
            sa.select(sa.literal("head"), last_id.where(messages.c.conversation == name).scalar_subquery(), name)
        )
    parts.append(
        sa.select(sa.literal("user"), users.c.id, users.c.username).where(
            users.c.id.in_(sa.bindparam("user_ids", expanding=True))
        )
    )
    return sa.union_all(*parts)


async def last_ids_txn(conn: AsyncConnection, conversations: set[str]) -> dict[str, int]:
    """The largest stored id of each of ``conversations`` that has one: a single probe of the
    ``(conversation, id)`` index each, however long the conversation."""
    if not conversations:
        return {}
    return (await batch_facts_txn(conn, (), conversations)).heads


def _inserted_message(row: dict[str, object], item: MessageSubmitted, sender: UserRef, created_at: datetime) -> ChatMessage:
    return ChatMessage(
        id=row["id"],
        sender=sender,
        recipient_id=item.recipient_id,
        body=item.body,
        created_at=created_at,
        client_msg_id=item.client_msg_id,
        prev_id=row["prev_id"],
        room_id=item.room_id,
        ciphertext=item.ciphertext,
    )


def _classify(
    item: MessageSubmitted, original: ChatMessage | None, names: dict[int, str], members: set[tuple[int, int]]
) -> StoreResult | None:
    """What to answer without inserting, or None when the message is to be inserted."""
    if original is not None:
        return Stored(original, duplicate=True)
    if item.sender.id not in names:
        return Rejected(item.sender.id, item.client_msg_id, RejectCode.SENDER_UNKNOWN, "the sender no longer exists")
    if item.room_id is not None and (item.room_id, item.sender.id) not in members:
        return Rejected(
            item.sender.id,
            item.client_msg_id,
            RejectCode.ROOM_NOT_FOUND,
            "no such room, or you are not a member of it",
        )
    if item.recipient_id is not None and item.recipient_id not in names:
        return Rejected(
            item.sender.id, item.client_msg_id, RejectCode.RECIPIENT_UNKNOWN, "the recipient does not exist"
        )
    return None


def _new_row(
    item: MessageSubmitted, conversation: str, created_at: datetime, new_id: int, prev_id: int | None
) -> dict[str, object]:
    return {
        "id": new_id,
        "prev_id": prev_id,
        "sender_id": item.sender.id,
        "recipient_id": item.recipient_id,
        "conversation": conversation,
        "body": item.body,
        "client_msg_id": item.client_msg_id,
        "created_at": created_at,
        "ciphertext": item.ciphertext.model_dump_json() if item.ciphertext is not None else None,
    }


async def messages_by_key_txn(conn: AsyncConnection, keys: Iterable[MessageKey]) -> dict[MessageKey, ChatMessage]:
    """The stored messages with these (sender_id, client_msg_id) keys, by key."""
    wanted = set(keys)
    if not wanted:
        return {}
    query, params = messages_by_key_query(conn.dialect.name, wanted)
    found: dict[MessageKey, ChatMessage] = {}
    for row in (await conn.execute(query, params)).all():
        key = (row.sender_id, row.client_msg_id)
        if key in wanted:
            found[key] = _row_to_message(row)
    return found


def messages_by_key_query(dialect: str, keys: set[MessageKey]) -> tuple[sa.Select, dict[str, object]]:
    """The statement (and its parameters) that finds the messages with these keys: one probe of
    the unique (sender_id, client_msg_id) index per key, on each database in the form its planner
    serves so. MariaDB, given one IN list per column, reads every message the batch's senders
    ever sent by ``(sender_id, id)`` and keeps the few that match (30,000 rows and 130 ms for a
    batch of 200 in a table of 30,000); it probes the unique index for a list of pairs. SQLite
    scans the table for a list of pairs, and probes the index for the two lists (the senders
    times the ids: the rows that are not keys of the batch are dropped by the caller)."""
    if dialect in ("mysql", "mariadb"):
        return _BY_KEY_PAIRS, {"keys": sorted(keys)}
    return _BY_KEY_LISTS, {"senders": sorted({s for s, _ in keys}), "client_msg_ids": sorted({c for _, c in keys})}


_BY_KEY = sa.select(*_MESSAGE_COLUMNS).select_from(_WITH_SENDER)
# Messages first, by the unique key, whatever the statistics say: a table that grew since they
# were taken looks small, and MariaDB then reads the senders first and each one's messages
# by (sender_id, id), all of them (10,000 rows for a batch of 200 new ones, 60 ms).
_BY_KEY_PAIRS = _by_index(
    _BY_KEY.prefix_with("STRAIGHT_JOIN", dialect="mysql").where(
        sa.tuple_(messages.c.sender_id, messages.c.client_msg_id).in_(sa.bindparam("keys", expanding=True))
    ),
    "uq_messages_sender_id_client_msg_id",
)
_BY_KEY_LISTS = _BY_KEY.where(
    messages.c.sender_id.in_(sa.bindparam("senders", expanding=True)),
    messages.c.client_msg_id.in_(sa.bindparam("client_msg_ids", expanding=True)),
)


async def usernames_txn(conn: AsyncConnection, user_ids: Iterable[int]) -> dict[int, str]:
    """The usernames of those of ``user_ids`` that exist."""
    ids = set(user_ids)
    if not ids:
        return {}
    rows = await conn.execute(sa.select(users.c.id, users.c.username).where(users.c.id.in_(ids)))
    return {row.id: row.username for row in rows}


def _row_to_message(row: sa.Row, senders: dict[tuple[int, str], UserRef] | None = None) -> ChatMessage:
    """A message from a row of ``_MESSAGE_COLUMNS``. ``senders``: the senders already made for
    the same page, shared by their messages (a page of 200 has few senders, and a ``UserRef`` is
    as dear to validate as the message). The row is unpacked by position: reading eleven
    columns by name costs more than making the message."""
    id_, sender_id, username, recipient_id, body, created_at, client_msg_id, prev_id, conversation, event, ciphertext = row
    sender = None if senders is None else senders.get((sender_id, username))
    if sender is None:
        sender = UserRef(id=sender_id, username=username)
        if senders is not None:
            senders[sender_id, username] = sender
    return ChatMessage(
        id=id_,
        sender=sender,
        recipient_id=recipient_id,
        body=body,
        created_at=_aware_utc(created_at),
        client_msg_id=client_msg_id,
        prev_id=prev_id,
        room_id=room_of_conversation(conversation),
        event=RoomEvent.model_validate_json(event) if event is not None else None,
        ciphertext=Encrypted.model_validate_json(ciphertext) if ciphertext is not None else None,
    )


def _naive_utc(moment: datetime) -> datetime:
    # The schema stores naive UTC (see chase.store.tables.Timestamp).
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _aware_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
