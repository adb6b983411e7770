"""Reporting tables: the projections of the event log, the inbox, and operator settings.

Every projection column is derived from events only (no ``now()``), so a rebuild from the
log produces the same rows as the live consumer. ``PROJECTION_TABLES`` are the ones a
rebuild recreates and swaps in; commitments and idempotency keys are operator data.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    Numeric,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from tpp_plumbing.db.engine import new_metadata
from tpp_plumbing.messaging.inbox import inbox_table
from tpp_plumbing.web.audit import audit_table
from tpp_plumbing.web.idempotency import idempotency_table

metadata = new_metadata()
idempotency = idempotency_table(metadata)
audit = audit_table(metadata)
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
    Column("title", Text, nullable=False, server_default=""),
)

enrollment_fact = Table(
    "enrollment_fact",
    metadata,
    Column("enrollment_id", UUID(as_uuid=True), primary_key=True),
    Column("session_id", UUID(as_uuid=True), nullable=False, index=True),
    # Once the trainee is erased, a surrogate id (store/projection/_statements.py), the same
    # for all their enrollments: figures keep counting the person once, without the link to
    # the id.
    # None only in rows erased before that (a rebuild from the log gives them the surrogate).
    Column("trainee_id", UUID(as_uuid=True), nullable=True),
    Column("country", Text, nullable=False),
    Column("gender", Text, nullable=False),
    Column("profession", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

evaluation_fact = Table(
    "evaluation_fact",
    metadata,
    Column("evaluation_id", UUID(as_uuid=True), primary_key=True),
    Column("enrollment_id", UUID(as_uuid=True), nullable=False),
    Column("session_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("score", SmallInteger, nullable=False),
)

follow_up_fact = Table(
    "follow_up_fact",
    metadata,
    Column("follow_up_id", UUID(as_uuid=True), primary_key=True),
    Column("enrollment_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("session_id", UUID(as_uuid=True), nullable=False, index=True),
    Column("followed_up_on", Date, nullable=False),
    Column("channel", Text, nullable=False),
    Column("outcome", Text, nullable=False),
)

organizer_dim = Table(
    "organizer_dim",
    metadata,
    Column("organizer_id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("country", Text, nullable=False),
    Column("province", Text, nullable=True),
)

plan_fact = Table(
    "plan_fact",
    metadata,
    Column("year", Integer, primary_key=True),
    Column("planned_sessions", Integer, nullable=False),
    Column("planned_overseas_sessions", Integer, nullable=True),
    Column("budget", Numeric, nullable=True),
    Column("currency", Text, nullable=True),
    Column("revision", Integer, nullable=False),
)

trainee_erased = Table(
    "trainee_erased",
    metadata,
    Column("trainee_id", UUID(as_uuid=True), primary_key=True),
)

projection_state = Table(
    "projection_state",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("events_applied", BigInteger, nullable=False),
    Column("last_event_at", DateTime(timezone=True), nullable=True),
)

# Where the live consumer has applied up to, written in each batch's transaction: the rebuild
# catches up to it before swapping. Not a projection (the rebuild never replaces it).
consumer_position = Table(
    "consumer_position",
    metadata,
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

commitment = Table(
    "commitment",
    metadata,
    Column("commitment_id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("target", BigInteger, nullable=False),
    Column("start_year", Integer, nullable=False),
    Column("end_year", Integer, nullable=False),
    Column("field", Text, nullable=True),
    Column("region", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: The tables a rebuild recreates from the log and swaps in, in dependency-free order.
PROJECTION_TABLES: tuple[Table, ...] = (
    inbox,
    session_fact,
    enrollment_fact,
    evaluation_fact,
    follow_up_fact,
    organizer_dim,
    plan_fact,
    trainee_erased,
    projection_state,
)
