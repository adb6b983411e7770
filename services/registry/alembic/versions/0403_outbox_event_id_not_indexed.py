"""outbox: event ids without their unique index, which no query uses (tpp_plumbing.db.shared_migrations)

Revision ID: 0403_outbox_event_id
Revises: 0402_gentle_autovacuum
Create Date: 2026-11-28 20:50:00
"""

from collections.abc import Sequence

from tpp_plumbing.db.shared_migrations import outbox_table_v2, outbox_table_v2_down

revision: str = "0403_outbox_event_id"
down_revision: str | None = "0402_gentle_autovacuum"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_table_v2()


def downgrade() -> None:
    outbox_table_v2_down()
