"""Registry tables: organizers, training sessions, annual plans, imports, and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    Boolean,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR, UUID
from tpp_plumbing.db.engine import new_metadata
from tpp_plumbing.messaging.outbox import outbox_table
from tpp_plumbing.web.audit import audit_table
from tpp_plumbing.web.idempotency import idempotency_table

metadata = new_metadata()
idempotency = idempotency_table(metadata)
audit = audit_table(metadata)
outbox = outbox_table(metadata)

organizer = Table(
    "organizer",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("province", Text),
    Column("country", Text, nullable=False),
    Column("contact", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Names are unique whatever their case: "Zhejiang University" is "ZHEJIANG UNIVERSITY".
    Index("uq_organizer_lower_name", func.lower(text("name")), unique=True),
)

training_session = Table(
    "training_session",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("organizer_id", UUID(as_uuid=True), ForeignKey("organizer.id"), nullable=False),
    Column("title", Text, nullable=False),
    Column("field", Text, nullable=False),
    Column("year", Integer, nullable=False, index=True),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("venue_city", Text, nullable=False),
    Column("venue_country", Text, nullable=False),
    Column("overseas", Boolean, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("languages", ARRAY(Text), nullable=False),
    Column("description", Text),
    Column("review_required", Boolean, nullable=False),
    Column("country_limit", Integer),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Full-text search of the catalogue (English stemming: "irrigated" finds "irrigation").
    Column(
        "search",
        TSVECTOR,
        Computed(
            "to_tsvector('english', title || ' ' || coalesce(description, ''))", persisted=True
        ),
        nullable=False,
    ),
    # Keyset pagination orders by (start_date, id), the catalogue by published ones only.
    Index("ix_training_session_start", "start_date", "id"),
    Index("ix_training_session_year_start", "year", "start_date", "id"),
    Index("ix_training_session_organizer", "organizer_id", "start_date", "id"),
    Index("ix_training_session_year_status", "year", "status", "start_date", "id"),
    Index(
        "ix_training_session_catalogue",
        "start_date",
        "id",
        postgresql_where=text("status = 'published'"),
    ),
    Index("ix_training_session_search", "search", postgresql_using="gin"),
    # Triggers (migration 0302) NOTIFY registry_catalogue when a published session changes.
    # Title fragments the stemmer misses ("micro-gr"): trigrams (migration 0301, pg_trgm).
    Index(
        "ix_training_session_title_trgm",
        "title",
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    ),
)

annual_plan = Table(
    "annual_plan",
    metadata,
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("revision", Integer, nullable=False, server_default=text("0")),
)

annual_plan_revision = Table(
    "annual_plan_revision",
    metadata,
    Column("year", Integer, ForeignKey("annual_plan.year"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("planned_sessions", Integer, nullable=False),
    Column("planned_overseas_sessions", Integer),
    Column("budget", Numeric(16, 2)),
    Column("currency", Text),
    Column("note", Text),
    Column("set_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("year", "revision"),
)

session_import_row = Table(
    "session_import_row",
    metadata,
    # sha256 of the row's validated content: the same row imported again creates nothing.
    Column("row_key", Text, primary_key=True),
    Column("session_id", UUID(as_uuid=True), ForeignKey("training_session.id"), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
