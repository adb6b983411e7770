"""audit log: no index on `target`. `GET /audit` finds a target by containment (an id
anywhere in it), which a B-tree cannot answer, and no other query reads it; the index cost
every audited command an insert at a random place (2.5-3.5 µs a row, measured)

Revision ID: 0402_audit_target
Revises: 0401_audit_log
Create Date: 2026-11-28 21:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0402_audit_target"
down_revision: str | None = "0401_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_log_target", table_name="audit_log")


def downgrade() -> None:
    op.create_index("ix_audit_log_target", "audit_log", ["target"])
