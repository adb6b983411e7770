"""autovacuum: the tables every command writes are analyzed less often (the outbox without
statistics on its payload and headers) and vacuumed at a gentler pace, so that an
autovacuum round no longer stalls the commands for a second (bench/RESULTS.md, "Autovacuum")

Revision ID: 0402_gentle_autovacuum
Revises: 0401_audit_log
Create Date: 2026-11-28 18:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0402_gentle_autovacuum"
down_revision: str | None = "0401_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values as written on 2026-11-28, spelled out: a revision never reads live constants.
_UPGRADE = (
    "ALTER TABLE outbox_message SET (autovacuum_vacuum_cost_delay = 20, autovacuum_analyze_scale_factor = 1.0)",
    "ALTER TABLE outbox_message ALTER COLUMN payload SET STATISTICS 0",
    "ALTER TABLE outbox_message ALTER COLUMN headers SET STATISTICS 0",
    "ALTER TABLE audit_log SET (autovacuum_vacuum_cost_delay = 20, autovacuum_analyze_scale_factor = 1.0)",
)
_DOWNGRADE = (
    "ALTER TABLE outbox_message RESET (autovacuum_vacuum_cost_delay, autovacuum_analyze_scale_factor)",
    "ALTER TABLE outbox_message ALTER COLUMN payload SET STATISTICS -1",
    "ALTER TABLE outbox_message ALTER COLUMN headers SET STATISTICS -1",
    "ALTER TABLE audit_log RESET (autovacuum_vacuum_cost_delay, autovacuum_analyze_scale_factor)",
)


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
