"""session view: the session's organizer (from the registry's session events), for scoping

Revision ID: 0401_session_view_organizer
Revises: 0501
Create Date: 2026-11-28 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0401_session_view_organizer"
down_revision: str | None = "0501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows projected before this column existed get it from the session's next
    # details event (or a replay of registry.sessions.v1); until then organizers are refused.
    op.add_column("session_view", sa.Column("organizer_id", sa.UUID(), nullable=True))
    op.create_index("ix_session_view_organizer_id", "session_view", ["organizer_id"])


def downgrade() -> None:
    op.drop_index("ix_session_view_organizer_id", table_name="session_view")
    op.drop_column("session_view", "organizer_id")
