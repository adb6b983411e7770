"""The enrollment service on Kafka: it publishes trainees and enrollments and reads the
registry's sessions (its session view) in its own group."""

from __future__ import annotations

from tpp_contracts.topics import ENROLLMENTS, SESSIONS, TRAINEES
from tpp_plumbing.messaging.declaration import Declaration

MESSAGING = Declaration("enrollment", publishes=(TRAINEES, ENROLLMENTS), consumes=(SESSIONS,))
