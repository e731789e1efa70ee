"""Delivery: prev_id on every message, and the persistence writer's lease.

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op

from chase.store.tables import MYSQL_TABLE_ARGS, WRITER_LEASE, BigId, Timestamp

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("prev_id", BigId, nullable=True))
    lease = op.create_table(
        "writer_leases",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_writer_leases"),
        **MYSQL_TABLE_ARGS,
    )
    # Expired from the start: the first worker to become active takes it.
    op.bulk_insert(lease, [{"name": WRITER_LEASE, "epoch": 0, "holder": "", "expires_at": datetime(1970, 1, 1)}])


def downgrade() -> None:
    op.drop_table("writer_leases")
    op.drop_column("messages", "prev_id")
