"""audit log: no index on target, which no query uses (tpp_plumbing.db.migrations.UNUSED_INDEXES)

Revision ID: 0404_audit_target
Revises: 0403_outbox_event_id
Create Date: 2026-11-28 21:20:00
"""

from collections.abc import Sequence

from alembic import op
from tpp_plumbing.db.migrations import UNUSED_INDEXES

revision: str = "0404_audit_target"
down_revision: str | None = "0403_outbox_event_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(UNUSED_INDEXES["audit_target"][0])


def downgrade() -> None:
    op.execute(UNUSED_INDEXES["audit_target"][1])
