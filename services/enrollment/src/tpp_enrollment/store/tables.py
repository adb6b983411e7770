"""Enrollment tables: trainees, enrollments, the session view, outbox and inbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Sequence,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from tpp_plumbing.db.engine import new_metadata
from tpp_plumbing.messaging.inbox import inbox_table
from tpp_plumbing.messaging.outbox import outbox_table
from tpp_plumbing.web.audit import audit_table
from tpp_plumbing.web.idempotency import idempotency_table

metadata = new_metadata()
idempotency = idempotency_table(metadata)
audit = audit_table(metadata)
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
    Column("venue_city", Text),
    Column("venue_country", Text),
    Column("version", Integer, nullable=False),
    Column("accepted", Integer, nullable=False, server_default="0"),
    # Moved by every transaction that locks the row to decide about the session's places
    # (store.lock_session and the like): an enrollment decided on an unlocked read is written
    # only if it has not moved since (service.enrollments).
    Column("places_version", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Whose session it is: organizers see and act on their own sessions only.
    Column("organizer_id", UUID(as_uuid=True), index=True),
)

# Personal data: the name and organization in clear (searched), passport number, email and
# birth date encrypted (tpp_enrollment.personal), the passport matched through its keyed hash.
# Erasure empties every personal column and sets erased_at; the rest stays for the figures.
trainee = Table(
    "trainee",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("full_name", Text),
    Column("country", Text, nullable=False),
    Column("gender", Text, nullable=False),
    Column("profession", Text, nullable=False),
    Column("organization", Text),
    Column("passport_hash", LargeBinary),
    Column("passport_number_sealed", LargeBinary),
    Column("email_sealed", LargeBinary),
    Column("birth_date_sealed", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("erased_at", DateTime(timezone=True)),
    # NULL once erased: an erased trainee is never matched again.
    Index("uq_trainee_passport_hash", "passport_hash", unique=True),
    Index("ix_trainee_country", "country"),
)

# The trainees an organizer may nominate by id besides those of its own sessions: those it
# registered, matched by passport with the full record, or an operator shared; ``personal``:
# it may see their personal data (it registered them, or an operator shared them).
trainee_organizer = Table(
    "trainee_organizer",
    metadata,
    Column("trainee_id", UUID(as_uuid=True), ForeignKey("trainee.id"), primary_key=True),
    Column("organizer_id", UUID(as_uuid=True), primary_key=True),
    Column("personal", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: FIFO order of waitlists: a waitlisted enrollment takes the next number.
waitlist_seq = Sequence("enrollment_waitlist_seq", metadata=metadata)
#: Serial part of certificate numbers, unique across the service.
certificate_seq = Sequence("certificate_seq", metadata=metadata)

enrollment = Table(
    "enrollment",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("session_id", UUID(as_uuid=True), nullable=False),
    Column("trainee_id", UUID(as_uuid=True), ForeignKey("trainee.id"), nullable=False),
    # The trainee's (it never changes): places per country are counted without the trainee.
    Column("country", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("waitlist_seq", BigInteger),
    # reason: a category (RejectionReason, WithdrawalReason, session_cancelled), sent in events;
    # note: the decider's own words, kept here only (and emptied by erasure).
    Column("reason", Text),
    Column("note", Text),
    Column("checked_in_at", DateTime(timezone=True)),
    Column("completed_on", Date),
    Column("certificate_number", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("session_id", "trainee_id", name="uq_enrollment_session_trainee"),
    Index("ix_enrollment_session_status", "session_id", "status", "waitlist_seq"),
    Index("ix_enrollment_trainee_id", "trainee_id"),
    Index("ix_enrollment_session_country", "session_id", "country", "status"),
    # Unique among completed enrollments; the others (most) have no entry, not a NULL one.
    Index(
        "uq_enrollment_certificate_number",
        "certificate_number",
        unique=True,
        postgresql_where=text("certificate_number IS NOT NULL"),
    ),
)

evaluation = Table(
    "evaluation",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "enrollment_id",
        UUID(as_uuid=True),
        ForeignKey("enrollment.id"),
        nullable=False,
        unique=True,
    ),
    Column("score", SmallInteger, nullable=False),
    Column("comment", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

follow_up = Table(
    "follow_up",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "enrollment_id", UUID(as_uuid=True), ForeignKey("enrollment.id"), nullable=False, index=True
    ),
    Column("followed_up_on", Date, nullable=False),
    Column("channel", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("note", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Bulk nominations: one job per distinct file (its SHA-256), its progress and row errors.
import_job = Table(
    "import_job",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("sha256", Text, nullable=False, unique=True),
    Column("filename", Text),
    Column("status", Text, nullable=False),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("processed", Integer, nullable=False, server_default="0"),
    Column("succeeded", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    # The run processing the file now; a chunk commits only while its run still holds the job.
    Column("runner", UUID(as_uuid=True)),
    # Each committed chunk moves it: a running job that stopped moving was abandoned.
    Column("progressed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The people of each import job's file (rows that passed validation): erasing one of them
# neutralizes the file name and hash of every job whose file held them.
import_trainee = Table(
    "import_trainee",
    metadata,
    Column("job_id", UUID(as_uuid=True), primary_key=True),
    Column("trainee_id", UUID(as_uuid=True), primary_key=True, index=True),
)

import_error = Table(
    "import_error",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("import_job.id"), primary_key=True),
    Column("row_number", Integer, primary_key=True),
    Column("reason", Text, nullable=False),
)
