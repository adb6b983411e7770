"""audit log: every command of an operator or organizer, append-only (tpp_plumbing.web.audit)

Revision ID: 0401_audit_log
Revises: 0302
Create Date: 2026-11-28 05:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from tpp_plumbing.web.audit import APPEND_ONLY_SQL, DROP_APPEND_ONLY_SQL

revision: str = "0401_audit_log"
down_revision: str | None = "0302"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("organizer_id", sa.UUID(), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"])
    op.create_index("ix_audit_log_target", "audit_log", ["target"])
    for statement in APPEND_ONLY_SQL:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_APPEND_ONLY_SQL:
        op.execute(statement)
    op.drop_table("audit_log")
