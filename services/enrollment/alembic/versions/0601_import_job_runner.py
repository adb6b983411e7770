"""import jobs: who runs them and when they last progressed, so that an abandoned job (its
process was killed mid-file) can be taken over by the next upload of the same file

Revision ID: 0601_import_job_runner
Revises: 0401_audit_log
Create Date: 2026-11-28 13:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0601_import_job_runner"
down_revision: str | None = "0401_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("import_job", sa.Column("runner", sa.UUID(), nullable=True))
    op.add_column(
        "import_job",
        sa.Column(
            "progressed_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )


def downgrade() -> None:
    op.drop_column("import_job", "progressed_at")
    op.drop_column("import_job", "runner")
