"""enrollment: the trainee's country (which never changes, erasure keeps it) kept on each
enrollment, so that the places a country holds in a session are counted from one index
instead of a join with every enrolled trainee

Revision ID: 0702_enrollment_country
Revises: 0701_places_version
Create Date: 2026-11-28 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0702_enrollment_country"
down_revision: str | None = "0701_places_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("enrollment", sa.Column("country", sa.Text(), nullable=True))
    op.execute(
        "UPDATE enrollment e SET country = t.country FROM trainee t WHERE t.id = e.trainee_id"
    )
    op.alter_column("enrollment", "country", nullable=False)
    op.create_index(
        "ix_enrollment_session_country", "enrollment", ["session_id", "country", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_enrollment_session_country", table_name="enrollment")
    op.drop_column("enrollment", "country")
