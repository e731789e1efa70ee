"""The database schema, as SQLAlchemy Core tables.

Runs unchanged on MySQL/MariaDB (utf8mb4, binary collation so bodies round-trip byte-exact)
and SQLite. Alembic migrations under ``migrations/versions`` create exactly these tables; a test
compares the two.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: MySQL options every table gets: full Unicode (emoji included), byte-exact comparison.
MYSQL_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

#: Ids are 64-bit on MySQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: Microsecond timestamps, stored as naive UTC.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")

USERNAME_MAX = 32
DEVICE_MAX = 64

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(USERNAME_MAX), nullable=False),
    # The seed's generated lower-case column: uniqueness regardless of letter case. Usernames
    # are ASCII (see services/auth/models.py), so lower() means the same on both databases.
    sa.Column("username_lower", sa.String(USERNAME_MAX), sa.Computed("lower(username)", persisted=True)),
    sa.Column("password_hash", sa.String(100), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("username_lower"),
    **MYSQL_TABLE_ARGS,
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # SHA-256 of the bearer token, hex: the token itself is never stored.
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
    # What the person sees in their list of sessions: a label the client gave (or its
    # User-Agent), and when the token was last used (updated at most once a minute).
    sa.Column("device", sa.String(DEVICE_MAX), nullable=True),
    sa.Column("last_seen_at", Timestamp, nullable=True),
    sa.UniqueConstraint("token_hash"),
    sa.Index("ix_sessions_user_id", "user_id"),
    sa.Index("ix_sessions_expires_at", "expires_at"),
    **MYSQL_TABLE_ARGS,
)

#: Failed-login counters, shared by every auth process (services/auth/throttle.py). One row
#: per scope (a client address, a user name, or the two together), keyed by the SHA-256 of
#: the scope so neither names nor addresses are kept in clear.
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("scope_key", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer(), nullable=False),
    sa.Column("blocked_until", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index("ix_login_throttle_updated_at", "updated_at"),
    **MYSQL_TABLE_ARGS,
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("sender_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # NULL: the public room.
    sa.Column("recipient_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    # "public", "dm:<lower id>:<higher id>" or "room:<id>": one indexed key per conversation,
    # so a page of history is one index range scan.
    sa.Column("conversation", sa.String(64), nullable=False),
    sa.Column("body", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql"), nullable=False),
    sa.Column("client_msg_id", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # The id of the message before this one in the same conversation (NULL for the first):
    # set by the persistence worker inside the batch's transaction, so clients see gaps.
    sa.Column("prev_id", BigId, nullable=True),
    # A room's membership event ("alice added bob"), as the JSON of chase.schemas.RoomEvent;
    # NULL for a message someone wrote.
    sa.Column("event", sa.Text(), nullable=True),
    # An end-to-end encrypted private message: its envelope (JSON of chase.schemas.Encrypted),
    # with ``body`` empty. NULL for a plain message.
    sa.Column("ciphertext", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql"), nullable=True),
    # Idempotent submit: a resend of the same client_msg_id by the same sender stores nothing.
    sa.UniqueConstraint("sender_id", "client_msg_id"),
    # One index per way a page is read, each ending in id so a page is one range scan in id
    # order: history by conversation, sync by what is public, sent, or received.
    sa.Index("ix_messages_conversation_id", "conversation", "id"),
    sa.Index("ix_messages_sender_id_id", "sender_id", "id"),
    sa.Index("ix_messages_recipient_id_id", "recipient_id", "id"),
    **MYSQL_TABLE_ARGS,
)

ROOM_NAME_MAX = 100
ROOM_TOPIC_MAX = 500

#: Group rooms (services/persistence/rooms.py). ``history`` is who sees what: "joined" (a
#: member sees messages from their joining on) or "all" (the whole history). ``member_count``
#: is the joined members, kept in step inside every membership change's transaction so the
#: size limit is one row read.
rooms = sa.Table(
    "rooms",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(ROOM_NAME_MAX), nullable=False),
    sa.Column("topic", sa.String(ROOM_TOPIC_MAX), nullable=True),
    sa.Column("owner_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("open", sa.Boolean(), nullable=False),
    sa.Column("history", sa.String(8), nullable=False),
    sa.Column("member_count", sa.Integer(), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    **MYSQL_TABLE_ARGS,
)

#: One row per (room, user) that was ever invited or joined. ``state``: invited, joined or
#: left; ``role`` (owner, admin, member) while joined. A member reads the room's messages with
#: ids in [visible_from, visible_until] (NULL: unbounded): visible_from is their join event in
#: a "joined" room, visible_until their leave or removal event.
room_members = sa.Table(
    "room_members",
    metadata,
    sa.Column("room_id", BigId, sa.ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("role", sa.String(8), nullable=True),
    sa.Column("visible_from", BigId, nullable=True),
    sa.Column("visible_until", BigId, nullable=True),
    sa.Column("updated_at", Timestamp, nullable=False),
    # A room's members (and invitations): the primary key would also read the rows of people
    # who left; these two read only the rows in the state asked for.
    sa.Index("ix_room_members_room_id_state_user_id", "room_id", "state", "user_id"),
    # A user's rooms.
    sa.Index("ix_room_members_user_id_state_room_id", "user_id", "state", "room_id"),
    **MYSQL_TABLE_ARGS,
)

#: Who may write messages: one row per writer role, with an epoch that goes up on every
#: takeover. Every batch's transaction renews the row only while its epoch is still the
#: writer's own, so a deposed writer (paused, then resumed) cannot commit behind the new one.
writer_leases = sa.Table(
    "writer_leases",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("epoch", sa.BigInteger(), nullable=False),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    **MYSQL_TABLE_ARGS,
)

#: End-to-end encryption (docs/e2ee.md). One device per session: its public identity keys,
#: made and signed on the client. Logging out or revoking the session deletes the row (and,
#: by cascade, its one-time keys); the server never holds a private key.
devices = sa.Table(
    "devices",
    metadata,
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # Unpadded base64 of 32-byte public keys (43 characters); the Ed25519 signature (86).
    sa.Column("curve25519", sa.String(64), nullable=False),
    sa.Column("ed25519", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_devices_user_id", "user_id"),
    **MYSQL_TABLE_ARGS,
)

#: A device's supply of one-time Curve25519 keys. A claim deletes the row it returns, so each
#: key is handed out once (services/auth/devices.py).
one_time_keys = sa.Table(
    "one_time_keys",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(32), sa.ForeignKey("devices.session_id", ondelete="CASCADE"), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.UniqueConstraint("session_id", "key_id"),
    **MYSQL_TABLE_ARGS,
)

#: A user's key backup: the public half of the recovery key (the person keeps the private
#: half), signed by the Ed25519 key of the device that made or last confirmed it.
key_backups = sa.Table(
    "key_backups",
    metadata,
    sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("signer_ed25519", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    **MYSQL_TABLE_ARGS,
)

#: The lease of the persistence worker that stores messages.
WRITER_LEASE = "persistence"

PUBLIC_CONVERSATION = "public"


ROOM_PREFIX = "room:"


def room_conversation(room_id: int) -> str:
    """The ``messages.conversation`` value of a group room's messages and events."""
    return f"{ROOM_PREFIX}{room_id}"


def room_of_conversation(conversation: str) -> int | None:
    """The room id of a ``room:<id>`` conversation; None for the public room and private chats."""
    return int(conversation[len(ROOM_PREFIX):]) if conversation.startswith(ROOM_PREFIX) else None


def conversation_key(sender_id: int, recipient_id: int | None, room_id: int | None = None) -> str:
    """The ``messages.conversation`` value for a message between these two (or in a room)."""
    if room_id is not None:
        return room_conversation(room_id)
    if recipient_id is None:
        return PUBLIC_CONVERSATION
    low, high = sorted((sender_id, recipient_id))
    return f"dm:{low}:{high}"
