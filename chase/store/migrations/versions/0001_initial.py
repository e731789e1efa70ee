"""Users, sessions and messages.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from chase.store.tables import MYSQL_TABLE_ARGS, USERNAME_MAX, BigId, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(USERNAME_MAX), nullable=False),
        sa.Column("username_lower", sa.String(USERNAME_MAX), sa.Computed("lower(username)", persisted=True)),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username_lower", name="uq_users_username_lower"),
        **MYSQL_TABLE_ARGS,
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"),
        sa.UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
        **MYSQL_TABLE_ARGS,
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sender_id", BigId, nullable=False),
        sa.Column("recipient_id", BigId, nullable=True),
        sa.Column("conversation", sa.String(64), nullable=False),
        sa.Column("body", sa.Text().with_variant(sa.dialects.mysql.MEDIUMTEXT(), "mysql"), nullable=False),
        sa.Column("client_msg_id", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(["sender_id"], ["users.id"], name="fk_messages_sender_id_users", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["users.id"], name="fk_messages_recipient_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("sender_id", "client_msg_id", name="uq_messages_sender_id_client_msg_id"),
        **MYSQL_TABLE_ARGS,
    )
    op.create_index("ix_messages_conversation_id", "messages", ["conversation", "id"])
    op.create_index("ix_messages_recipient_id_id", "messages", ["recipient_id", "id"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("sessions")
    op.drop_table("users")
