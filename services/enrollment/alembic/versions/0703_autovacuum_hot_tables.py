"""autovacuum: the tables every enrollment writes are vacuumed after 2% of new or changed
rows instead of 20%, so that counts by session stay index-only scans (visibility map set)
and the session rows' update chains stay short under a sustained stream of commands

Revision ID: 0703_autovacuum_hot_tables
Revises: 0702_enrollment_country
Create Date: 2026-11-28 14:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0703_autovacuum_hot_tables"
down_revision: str | None = "0702_enrollment_country"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL's defaults are 0.2 of the table (analyze stays at its 0.1: statistics need no
# more, and a frequent ANALYZE is a burst of CPU).
_TABLES = ("enrollment", "session_view", "outbox_message")
_SETTINGS = ("autovacuum_vacuum_scale_factor", "autovacuum_vacuum_insert_scale_factor")


def upgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} SET ({', '.join(f'{s} = 0.02' for s in _SETTINGS)})")


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(_SETTINGS)})")
