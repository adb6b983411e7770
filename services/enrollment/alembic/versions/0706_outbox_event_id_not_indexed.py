"""outbox: event ids without a unique index. The outbox makes each id itself (a UUIDv7) and
nothing looks a row up by it, while the index cost every event an entry twice: when it is
written and when the relay marks it published (an update that cannot be HOT)

Revision ID: 0706_outbox_event_id
Revises: 0705_certificate_partial
Create Date: 2026-11-28 20:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0706_outbox_event_id"
down_revision: str | None = "0705_certificate_partial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_outbox_message_event_id", "outbox_message", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint("uq_outbox_message_event_id", "outbox_message", ["event_id"])
