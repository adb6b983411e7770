"""idempotency: replay ETag and Location headers

Revision ID: 0003
Revises: 0101
"""

from collections.abc import Sequence

from tpp_plumbing.db.shared_migrations import idempotency_table_v2, idempotency_table_v2_down

revision: str = "0003"
down_revision: str | None = "0101"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    idempotency_table_v2()


def downgrade() -> None:
    idempotency_table_v2_down()
