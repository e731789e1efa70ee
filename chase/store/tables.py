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
    sa.UniqueConstraint("token_hash"),
    sa.Index("ix_sessions_user_id", "user_id"),
    **MYSQL_TABLE_ARGS,
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("sender_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # NULL: the public room.
    sa.Column("recipient_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    # "public", or "dm:<lower id>:<higher id>": one indexed key per conversation, so a page of
    # history is one index range scan. Group chats will add "group:<id>".
    sa.Column("conversation", sa.String(64), nullable=False),
    sa.Column("body", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql"), nullable=False),
    sa.Column("client_msg_id", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # Idempotent submit: a resend of the same client_msg_id by the same sender stores nothing.
    sa.UniqueConstraint("sender_id", "client_msg_id"),
    # One index per way a page is read, each ending in id so a page is one range scan in id
    # order: history by conversation, sync by what is public, sent, or received.
    sa.Index("ix_messages_conversation_id", "conversation", "id"),
    sa.Index("ix_messages_sender_id_id", "sender_id", "id"),
    sa.Index("ix_messages_recipient_id_id", "recipient_id", "id"),
    **MYSQL_TABLE_ARGS,
)

PUBLIC_CONVERSATION = "public"


def conversation_key(sender_id: int, recipient_id: int | None) -> str:
    """The ``messages.conversation`` value for a message between these two (or the room)."""
    if recipient_id is None:
        return PUBLIC_CONVERSATION
    low, high = sorted((sender_id, recipient_id))
    return f"dm:{low}:{high}"
