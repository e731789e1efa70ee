"""End-to-end encryption: devices, one-time keys, key backups, encrypted message envelopes.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from chase.store.tables import MYSQL_TABLE_ARGS, BigId, Timestamp

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("ciphertext", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql"), nullable=True))
    op.create_table(
        "devices",
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("curve25519", sa.String(64), nullable=False),
        sa.Column("ed25519", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_devices"),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name="fk_devices_session_id_sessions", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_devices_user_id_users", ondelete="CASCADE"),
        **MYSQL_TABLE_ARGS,
    )
    op.create_index("ix_devices_user_id", "devices", ["user_id"])
    op.create_table(
        "one_time_keys",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_one_time_keys"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["devices.session_id"], name="fk_one_time_keys_session_id_devices", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("session_id", "key_id", name="uq_one_time_keys_session_id_key_id"),
        **MYSQL_TABLE_ARGS,
    )
    op.create_table(
        "key_backups",
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("signer_ed25519", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_key_backups"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_key_backups_user_id_users", ondelete="CASCADE"),
        **MYSQL_TABLE_ARGS,
    )


def downgrade() -> None:
    op.drop_table("key_backups")
    op.drop_table("one_time_keys")
    op.drop_table("devices")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("ciphertext")
