"""audit log: no index on target, which no query uses (tpp_plumbing.db.shared_migrations)

Revision ID: 0404_audit_target
Revises: 0403_outbox_event_id
Create Date: 2026-11-28 21:20:00
"""

from collections.abc import Sequence

from tpp_plumbing.db.shared_migrations import audit_table_v2, audit_table_v2_down

revision: str = "0404_audit_target"
down_revision: str | None = "0403_outbox_event_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    audit_table_v2()


def downgrade() -> None:
    audit_table_v2_down()
