"""The migrations of the tables every service has: outbox, inbox, idempotency keys, audit log.

Each function is one version of one table's schema, written once and called by each service's
own alembic revision. A version is never edited once a service's revision calls it (that
revision is applied in databases already): a change is a new function, ``<table>_v2``, called
by a new revision. Each ``*_down`` undoes its version. The SQL is spelled out here, not taken
from the code that uses the tables, so that a later change to that code cannot change what an
old revision built.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# --- outbox_message (tpp_plumbing.outbox) ----------------------------------------------------


def outbox_table_v1() -> None:
    """The outbox: events waiting for the relay, and the index of the unpublished ones."""
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_message_event_id")),
    )
    op.create_index(
        "ix_outbox_message_unpublished",
        "outbox_message",
        ["id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )


def outbox_table_v1_down() -> None:
    """Undo ``outbox_table_v1``."""
    op.drop_index(
        "ix_outbox_message_unpublished",
        table_name="outbox_message",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox_message")


# Every command writes an outbox row and an audit row, and each index on them is one more
# entry per row. Two served no query:
# - outbox_message.event_id (unique): the outbox makes each id itself (a UUIDv7), and no query
#   looks a row up by it; the entry was written twice, on insert and when the relay marks the
#   row published (an update that cannot be HOT);
# - audit_log.target: ``GET /audit`` finds a target by containment (an id anywhere in it),
#   which a B-tree cannot answer; the entry went to a random place, on every command.


def outbox_table_v2() -> None:
    """The outbox without the unique index on event ids, which no query uses."""
    op.execute("ALTER TABLE outbox_message DROP CONSTRAINT uq_outbox_message_event_id")


def outbox_table_v2_down() -> None:
    """Undo ``outbox_table_v2``."""
    op.execute(
        "ALTER TABLE outbox_message ADD CONSTRAINT uq_outbox_message_event_id UNIQUE (event_id)"
    )


# --- inbox_message (tpp_plumbing.inbox) ------------------------------------------------------


def inbox_table_v1() -> None:
    """The inbox: the ids of the events a consumer applied, with where it read them."""
    op.create_table(
        "inbox_message",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "applied_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_inbox_message")),
    )


def inbox_table_v1_down() -> None:
    """Undo ``inbox_table_v1``."""
    op.drop_table("inbox_message")


# --- idempotency_key (tpp_plumbing.idempotency) ----------------------------------------------


def idempotency_table_v1() -> None:
    """Idempotency keys: each key's request fingerprint and the response to replay."""
    op.create_table(
        "idempotency_key",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_key")),
    )


def idempotency_table_v1_down() -> None:
    """Undo ``idempotency_table_v1``."""
    op.drop_table("idempotency_key")


def idempotency_table_v2() -> None:
    """Idempotency keys with the response headers to replay (ETag, Location)."""
    op.add_column("idempotency_key", sa.Column("headers", postgresql.JSONB(astext_type=sa.Text())))


def idempotency_table_v2_down() -> None:
    """Undo ``idempotency_table_v2``."""
    op.drop_column("idempotency_key", "headers")


# --- audit_log (tpp_plumbing.audit) ----------------------------------------------------------

_AUDIT_APPEND_ONLY_V1 = (
    """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
""",
    """
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
""",
    """
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
""",
)


def audit_table_v1() -> None:
    """The audit log of every command, append-only (triggers refuse updates and deletes)."""
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("organizer_id", sa.UUID(), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"])
    op.create_index("ix_audit_log_target", "audit_log", ["target"])
    for statement in _AUDIT_APPEND_ONLY_V1:
        op.execute(statement)


def audit_table_v1_down() -> None:
    """Undo ``audit_table_v1``."""
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_or_delete ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table("audit_log")


def audit_table_v2() -> None:
    """The audit log without the index on target, which no query uses (see the outbox's v2)."""
    op.execute("DROP INDEX ix_audit_log_target")


def audit_table_v2_down() -> None:
    """Undo ``audit_table_v2``."""
    op.execute("CREATE INDEX ix_audit_log_target ON audit_log (target)")
