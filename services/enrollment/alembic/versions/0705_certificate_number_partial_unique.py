"""enrollment: certificate numbers unique among the enrollments that have one (a partial
unique index), so that the many without one add no index entry

Revision ID: 0705_certificate_partial
Revises: 0704_gentle_autovacuum
Create Date: 2026-11-28 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0705_certificate_partial"
down_revision: str | None = "0704_gentle_autovacuum"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_enrollment_certificate_number", "enrollment", type_="unique")
    op.create_index(
        "uq_enrollment_certificate_number",
        "enrollment",
        ["certificate_number"],
        unique=True,
        postgresql_where=sa.text("certificate_number IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_enrollment_certificate_number", table_name="enrollment")
    op.create_unique_constraint(
        "uq_enrollment_certificate_number", "enrollment", ["certificate_number"]
    )
