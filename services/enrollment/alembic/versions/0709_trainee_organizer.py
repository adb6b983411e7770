"""enrollment: which trainees an organizer may nominate and see (trainee_organizer), and the
people of each import job (import_trainee), so that erasure neutralizes their jobs' files

Revision ID: 0709_trainee_organizer
Revises: 0708_reason_note
Create Date: 2026-12-07 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0709_trainee_organizer"
down_revision: str | None = "0708_reason_note"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trainee_organizer",
        sa.Column("trainee_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("organizer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["trainee_id"], ["trainee.id"], name=op.f("fk_trainee_organizer_trainee_id_trainee")
        ),
        sa.PrimaryKeyConstraint("trainee_id", "organizer_id", name=op.f("pk_trainee_organizer")),
    )
    op.create_table(
        "import_trainee",
        sa.Column("job_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("trainee_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "trainee_id", name=op.f("pk_import_trainee")),
    )
    op.create_index(
        op.f("ix_import_trainee_trainee_id"), "import_trainee", ["trainee_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_import_trainee_trainee_id"), table_name="import_trainee")
    op.drop_table("import_trainee")
    op.drop_table("trainee_organizer")
