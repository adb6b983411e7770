"""autovacuum: the tables every command writes are analyzed less often (the outbox without
statistics on its payload and headers) and vacuumed at a gentler pace, so that an
autovacuum round no longer stalls the commands for a second (tpp_plumbing.db.migrations)

Revision ID: 0704_gentle_autovacuum
Revises: 0703_autovacuum_hot_tables
Create Date: 2026-11-28 18:45:00
"""

from collections.abc import Sequence

from alembic import op
from tpp_plumbing.db.migrations import default_autovacuum, gentle_autovacuum

revision: str = "0704_gentle_autovacuum"
down_revision: str | None = "0703_autovacuum_hot_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("enrollment", "session_view", "outbox_message", "audit_log")


def upgrade() -> None:
    for statement in gentle_autovacuum(*_TABLES, analyze_scale_factor={"enrollment": 0.5}):
        op.execute(statement)


def downgrade() -> None:
    for statement in default_autovacuum(*_TABLES):
        op.execute(statement)
