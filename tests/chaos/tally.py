"""What the load generator sent and got back: its tally, and the enrollments confirmed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Confirmed:
    """An enrollment the platform confirmed: its id, session, trainee and first outcome."""

    enrollment_id: uuid.UUID
    session_id: uuid.UUID
    trainee_id: uuid.UUID
    status: str
    by_read: bool = False  # the command's answer was lost; a 2xx read confirmed it


@dataclass
class Tally:
    """What the load generator sent and what came back."""

    commands: int = 0
    attempts: int = 0
    retries: int = 0
    replayed: int = 0
    enroll_commands: int = 0
    enroll_refused: int = 0
    enroll_unresolved: int = 0
    enroll_resolved_absent: int = 0
    trainees_created: int = 0
    organizers_created: int = 0
    sessions_created: int = 0
    sessions_published: int = 0
    capacity_changes: int = 0
    registry_failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    #: HTTP requests as the balancer forwards them (after re-routing refused connections).
    requests: int = 0
    #: Of those, the ones without an answer (transport error) or answered with a 5xx.
    failed: int = 0
    #: Refused connections the balancer sent on to another replica.
    rerouted: int = 0
    #: Failed requests by what came back (an exception's name or an HTTP status).
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, what: str) -> None:
        self.failed += 1
        self.failures[what] = self.failures.get(what, 0) + 1
