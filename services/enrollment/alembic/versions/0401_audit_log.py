"""audit log: every command of an operator or organizer, append-only (tpp_plumbing.web.audit)

Revision ID: 0401_audit_log
Revises: 0401_session_view_organizer
Create Date: 2026-11-28 05:45:00
"""

from collections.abc import Sequence

from tpp_plumbing.db.shared_migrations import audit_table_v1, audit_table_v1_down

revision: str = "0401_audit_log"
down_revision: str | None = "0401_session_view_organizer"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    audit_table_v1()


def downgrade() -> None:
    audit_table_v1_down()
