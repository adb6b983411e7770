"""outbox: event ids without their unique index, which no query uses (tpp_plumbing.db.migrations.UNUSED_INDEXES)

Revision ID: 0706_outbox_event_id
Revises: 0705_certificate_partial
Create Date: 2026-11-28 20:50:00
"""

from collections.abc import Sequence

from alembic import op
from tpp_plumbing.db.migrations import UNUSED_INDEXES

revision: str = "0706_outbox_event_id"
down_revision: str | None = "0705_certificate_partial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(UNUSED_INDEXES["outbox_event_id"][0])


def downgrade() -> None:
    op.execute(UNUSED_INDEXES["outbox_event_id"][1])
