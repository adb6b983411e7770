"""Reporting projections and the inbox."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID
from tpp_plumbing.db import new_metadata
from tpp_plumbing.idempotency import idempotency_table
from tpp_plumbing.inbox import inbox_table

metadata = new_metadata()
idempotency = idempotency_table(metadata)
inbox = inbox_table(metadata)

session_fact = Table(
    "session_fact",
    metadata,
    Column("session_id", UUID(as_uuid=True), primary_key=True),
    Column("organizer_id", UUID(as_uuid=True), nullable=False),
    Column("year", Integer, nullable=False, index=True),
    Column("field", Text, nullable=False),
    Column("venue_country", Text, nullable=False),
    Column("overseas", Boolean, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
)

enrollment_fact = Table(
    "enrollment_fact",
    metadata,
    Column("enrollment_id", UUID(as_uuid=True), primary_key=True),
    Column("session_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("trainee_id", UUID(as_uuid=True), nullable=False),
    Column("country", Text, nullable=False),
    Column("gender", Text, nullable=False),
    Column("profession", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
