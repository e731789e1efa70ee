"""Read indexes: (sender_id, id), so a sync reads the viewer's sent messages by index range.

History pages read (conversation, id) and the received part of a sync (recipient_id, id); the
sent part had only (sender_id, client_msg_id), which cannot give them in id order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_sender_id_id", "messages", ["sender_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_sender_id_id", table_name="messages")
