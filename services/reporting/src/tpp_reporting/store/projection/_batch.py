"""A batch of events folded into its net effect, per projected row (no I/O).

Events of one aggregate arrive in order (one key, one partition), so within a batch the last
event of an enrollment or organizer wins, and session events are guarded by the session's
version. Nothing reads the clock: every value comes from the events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec

from tpp_reporting import readers as ev


class Item(msgspec.Struct, frozen=True, gc=False):
    """A decoded event and where it was read from (not tracked by the cyclic GC: cheap)."""

    topic: str
    partition: int
    offset: int
    event: ev.Event


@dataclass
class Batch:
    """The net effect of a batch of new events, per projected row."""

    # session_id -> [organizer_id, year, field, venue_country, overseas, capacity, status,
    #                version, title]
    sessions: dict[uuid.UUID, list[Any]] = field(default_factory=dict)
    # session_id -> [status, version, year, capacity, venue_country, overseas] (None: unchanged)
    session_changes: dict[uuid.UUID, list[Any]] = field(default_factory=dict)
    # enrollment_id -> (session_id, trainee_id, country, gender, profession, status, time)
    enrollments: dict[uuid.UUID, tuple[Any, ...]] = field(default_factory=dict)
    evaluations: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, int]] = field(default_factory=dict)
    follow_ups: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, date, str, str]] = field(
        default_factory=dict
    )
    organizers: dict[uuid.UUID, tuple[str, str, str, str | None]] = field(default_factory=dict)
    plans: dict[int, tuple[int, int | None, Decimal | None, str | None, int]] = field(
        default_factory=dict
    )
    erased: set[uuid.UUID] = field(default_factory=set)
    count: int = 0
    last_event_at: datetime | None = None

    def add(self, event: ev.Event) -> None:
        """Fold one event into the batch (events of one aggregate in log order)."""
        self.count += 1
        if self.last_event_at is None or event.time > self.last_event_at:
            self.last_event_at = event.time
        data = event.data
        status = ev.STATUS_OF.get(event.type)
        if status is not None:
            self.enrollments[data.enrollment_id] = (
                data.session_id,
                data.trainee_id,
                data.country,
                data.gender.value,
                data.profession.value,
                status.value,
                event.time,
            )
        elif isinstance(data, ev.SessionDetails):
            self._session_details(data)
        elif isinstance(data, ev.SessionChange):
            self._session_change(data)
        elif isinstance(data, ev.EvaluationSubmitted):
            self.evaluations[data.evaluation_id] = (data.enrollment_id, data.session_id, data.score)
        elif isinstance(data, ev.FollowUpRecorded):
            self.follow_ups[data.follow_up_id] = (
                data.enrollment_id,
                data.session_id,
                data.followed_up_on,
                data.channel.value,
                data.outcome.value,
            )
        elif isinstance(data, ev.OrganizerState):
            self.organizers[data.organizer_id] = (
                data.name,
                data.kind.value,
                data.country,
                data.province,
            )
        elif isinstance(data, ev.PlanSet):
            known = self.plans.get(data.year)
            if known is None or known[4] < data.revision:
                self.plans[data.year] = (
                    data.planned_sessions,
                    data.planned_overseas_sessions,
                    data.budget,
                    data.currency,
                    data.revision,
                )
        elif isinstance(data, ev.TraineeErased):
            self.erased.add(data.trainee_id)

    def _session_details(self, data: ev.SessionDetails) -> None:
        known = self.sessions.get(data.session_id)
        if known is not None and known[7] >= data.version:
            return
        self.sessions[data.session_id] = [
            data.organizer_id,
            data.year,
            data.field.value,
            data.venue_country,
            data.overseas,
            data.capacity,
            data.status.value,
            data.version,
            data.title,
        ]
        self.session_changes.pop(data.session_id, None)

    def _session_change(self, data: ev.SessionChange) -> None:
        full = self.sessions.get(data.session_id)
        if full is not None:
            if full[7] < data.version:
                full[6], full[7] = data.status.value, data.version
                if data.year is not None:
                    full[1] = data.year
                if data.capacity is not None:
                    full[5] = data.capacity
                if data.venue_country is not None:
                    full[3], full[4] = data.venue_country, data.overseas
            return
        change = self.session_changes.get(data.session_id)
        if change is None:
            change = self.session_changes[data.session_id] = [None, 0, None, None, None, None]
        if change[1] >= data.version:
            return
        change[0], change[1] = data.status.value, data.version
        if data.year is not None:
            change[2] = data.year
        if data.capacity is not None:
            change[3] = data.capacity
        if data.venue_country is not None:
            change[4], change[5] = data.venue_country, data.overseas
