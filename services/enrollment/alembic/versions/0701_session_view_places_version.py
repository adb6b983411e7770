"""session view: places_version, moved by every transaction that decides about a session's
places, so that an enrollment can be decided on an unlocked read and written in one
statement that checks nothing moved meanwhile (optimistic concurrency); and the enrollment
index on session_id alone goes (two other indexes begin with session_id)

Revision ID: 0701_places_version
Revises: 0601_import_job_runner
Create Date: 2026-11-28 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0701_places_version"
down_revision: str | None = "0601_import_job_runner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "session_view",
        sa.Column("places_version", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.drop_index("ix_enrollment_session_id", table_name="enrollment")


def downgrade() -> None:
    op.create_index("ix_enrollment_session_id", "enrollment", ["session_id"], unique=False)
    op.drop_column("session_view", "places_version")
