"""catalogue: trigram index on session titles

The public catalogue matches words by full text (GIN on ``search``) OR by a title fragment
(``title ILIKE '%word%'``). Without an index for the fragment, a search for a rare word reads
every session; with this one PostgreSQL combines both GIN indexes (BitmapOr).

pg_trgm is a trusted extension: the database owner (the service's role) may create it.

Revision ID: 0301
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0301"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE INDEX ix_training_session_title_trgm ON training_session"
        " USING gin (title gin_trgm_ops)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_training_session_title_trgm")
