"""catalogue change notifications; an index for lists by year and status

Each registry worker caches rendered catalogue pages and must forget them when the
catalogue changes, whichever process (or plain SQL) changed it. These triggers send
``NOTIFY registry_catalogue`` (delivered at commit, only if it commits) on every change of
a session that is or was published, and on an organizer's rename (entries carry the name).
Drafts being created or edited notify nobody: the WHEN clauses skip them without a call.

``(year, status, start_date, id)`` serves lists filtered by year and status in page order
(the operators' "published this year" views) without sorting the year's sessions.

Revision ID: 0302
Revises: 0301
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0302"
down_revision: str | None = "0301"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION notify_catalogue_changed() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN PERFORM pg_notify('registry_catalogue', ''); RETURN NULL; END $$"
    )
    for name, when in (
        ("INSERT", "NEW.status = 'published'"),
        ("UPDATE", "OLD.status = 'published' OR NEW.status = 'published'"),
        ("DELETE", "OLD.status = 'published'"),
    ):
        op.execute(
            f"CREATE TRIGGER training_session_catalogue_{name.lower()} AFTER {name}"
            f" ON training_session FOR EACH ROW WHEN ({when})"
            " EXECUTE FUNCTION notify_catalogue_changed()"
        )
    op.execute(
        "CREATE TRIGGER organizer_catalogue_rename AFTER UPDATE OF name ON organizer"
        " FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name)"
        " EXECUTE FUNCTION notify_catalogue_changed()"
    )
    op.execute(
        "CREATE INDEX ix_training_session_year_status"
        " ON training_session (year, status, start_date, id)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_training_session_year_status")
    op.execute("DROP TRIGGER organizer_catalogue_rename ON organizer")
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER training_session_catalogue_{name} ON training_session")
    op.execute("DROP FUNCTION notify_catalogue_changed()")
