"""idempotency: replay ETag and Location headers

Revision ID: 0003
Revises: 0101
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0101"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "idempotency_key", sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()))
    )


def downgrade() -> None:
    op.drop_column("idempotency_key", "headers")
