"""idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 02:43:56.439771
"""

from collections.abc import Sequence

from tpp_plumbing.db.shared_migrations import idempotency_table_v1, idempotency_table_v1_down


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    idempotency_table_v1()


def downgrade() -> None:
    idempotency_table_v1_down()
