"""Registry tables: organizers, training sessions, and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from tpp_plumbing.db import new_metadata
from tpp_plumbing.idempotency import idempotency_table
from tpp_plumbing.outbox import outbox_table

metadata = new_metadata()
idempotency = idempotency_table(metadata)
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
)
