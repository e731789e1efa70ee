"""Group rooms: rooms, their members, and membership events in the messages table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from chase.store.tables import MYSQL_TABLE_ARGS, ROOM_NAME_MAX, ROOM_TOPIC_MAX, BigId, Timestamp

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("event", sa.Text(), nullable=True))
    op.create_table(
        "rooms",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(ROOM_NAME_MAX), nullable=False),
        sa.Column("topic", sa.String(ROOM_TOPIC_MAX), nullable=True),
        sa.Column("owner_id", BigId, nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("history", sa.String(8), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rooms"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_rooms_owner_id_users", ondelete="CASCADE"),
        **MYSQL_TABLE_ARGS,
    )
    op.create_table(
        "room_members",
        sa.Column("room_id", BigId, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("role", sa.String(8), nullable=True),
        sa.Column("visible_from", BigId, nullable=True),
        sa.Column("visible_until", BigId, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("room_id", "user_id", name="pk_room_members"),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name="fk_room_members_room_id_rooms", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_room_members_user_id_users", ondelete="CASCADE"
        ),
        **MYSQL_TABLE_ARGS,
    )
    op.create_index("ix_room_members_room_id_state_user_id", "room_members", ["room_id", "state", "user_id"])
    op.create_index("ix_room_members_user_id_state_room_id", "room_members", ["user_id", "state", "room_id"])


def downgrade() -> None:
    op.drop_table("room_members")
    op.drop_table("rooms")
    op.execute(sa.text("DELETE FROM messages WHERE conversation LIKE 'room:%'"))
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("event")
