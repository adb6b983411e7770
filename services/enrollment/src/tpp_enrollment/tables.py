"""Enrollment tables: trainees, enrollments, the session view, outbox and inbox."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from tpp_plumbing.db import new_metadata
from tpp_plumbing.idempotency import idempotency_table
from tpp_plumbing.inbox import inbox_table
from tpp_plumbing.outbox import outbox_table

metadata = new_metadata()
idempotency = idempotency_table(metadata)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# The service's own projection of the registry's session events.
session_view = Table(
    "session_view",
    metadata,
    Column("session_id", UUID(as_uuid=True), primary_key=True),
    Column("status", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("review_required", Boolean, nullable=False),
    Column("country_limit", Integer),
    Column("version", Integer, nullable=False),
    Column("accepted", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

trainee = Table(
    "trainee",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("full_name", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("gender", Text, nullable=False),
    Column("profession", Text, nullable=False),
    Column("organization", Text),
    Column("email", Text),
    Column("passport_number", Text, nullable=False),
    Column("birth_date", Date),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("passport_number", "country", name="uq_trainee_passport_country"),
)

enrollment = Table(
    "enrollment",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("session_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("trainee_id", UUID(as_uuid=True), ForeignKey("trainee.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("session_id", "trainee_id", name="uq_enrollment_session_trainee"),
)
