"""The program's events, generated in each aggregate's order, and loaded on scratch topics."""

# Benchmark data, not cryptography.
# ruff: noqa: S311

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from tpp_plumbing.settings import KafkaSettings

TOPICS = (
    "registry.organizers.v1",
    "registry.plans.v1",
    "registry.sessions.v1",
    "enrollment.trainees.v1",
    "enrollment.enrollments.v1",
)
FIELDS = ["agriculture_forestry", "information_technology", "new_energy", "medical_health"]
FIELDS += ["manufacturing_technology", "resources_environment", "transportation", "marine"]
COUNTRIES = "KE NG ET GH TZ UG EG MA ZA SN LA KH MM NP PK BD LK VN ID MN KZ UZ PE BO EC CU BR"
COUNTRIES = COUNTRIES + " AR MX FJ PG RS BY TR IR IQ JO"
GENDERS = ["female", "male", "male", "female", "undisclosed"]
PROFESSIONS = ["expert", "scholar", "st_official", "technical_professional"]
OUTCOMES = ["technology_adopted", "cooperation_project_started", "further_training", "other"]
FIRST_YEAR = 2011
YEARS = 20


class Events:
    """Generates the program's events as (topic, key, value) in each aggregate's order."""

    def __init__(self, target: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        # ~88 events a session with its enrollments; trainees add ~1 event per 8.
        self.sessions = max(target // 100, 40)
        self.time = datetime(2026, 1, 1, tzinfo=UTC)
        self.countries = COUNTRIES.split()
        self.session_ids: list[str] = []
        self.organizer_ids = [str(uuid.UUID(int=self.rng.getrandbits(128))) for _ in range(200)]

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def envelope(self, topic: str, key: str, event_type: str, data: dict[str, Any]) -> tuple:
        self.time += timedelta(milliseconds=3)
        event_id = self._id()
        value = {
            "specversion": "1.0",
            "id": event_id,
            "source": "/bench",
            "type": event_type,
            "time": self.time.isoformat(),
            "subject": key,
            "datacontenttype": "application/json",
            "schemaversion": 1,
            "correlationid": event_id,
            "data": data,
        }
        return topic, key.encode(), orjson.dumps(value)

    def __iter__(self) -> Iterator[tuple[str, bytes, bytes]]:
        rng = self.rng
        for organizer in self.organizer_ids:
            yield self.envelope(
                TOPICS[0],
                organizer,
                "tpp.registry.organizer.created.v1",
                {
                    "organizer_id": organizer,
                    "name": f"Institute {organizer[:6]}",
                    "kind": "university",
                    "province": "Zhejiang",
                    "country": "CN",
                    "contact": None,
                },
            )
        per_year = self.sessions // YEARS
        for i in range(YEARS + 1):
            year = FIRST_YEAR + i
            yield self.envelope(
                TOPICS[1],
                str(year),
                "tpp.registry.plan.set.v1",
                {
                    "year": year,
                    "planned_sessions": per_year + rng.randint(-5, 10),
                    "planned_overseas_sessions": 2,
                    "budget": None,
                    "currency": None,
                    "revision": 1,
                    "note": None,
                },
            )
        trainees = [
            (self._id(), rng.choice(self.countries), rng.choice(GENDERS), rng.choice(PROFESSIONS))
            for _ in range(self.sessions * 12)
        ]
        for trainee_id, country, gender, profession in trainees:
            yield self.envelope(
                TOPICS[3],
                trainee_id,
                "tpp.enrollment.trainee.registered.v1",
                {
                    "trainee_id": trainee_id,
                    "country": country,
                    "gender": gender,
                    "profession": profession,
                },
            )
        for n in range(self.sessions):
            yield from self._session(n, per_year, trainees)

    def _session(self, n: int, per_year: int, trainees: list[tuple[str, ...]]) -> Iterator[Any]:
        rng = self.rng
        sid = self._id()
        self.session_ids.append(sid)
        year = FIRST_YEAR + min(n // per_year, YEARS - 1)
        capacity = rng.choice((20, 25, 30))
        overseas = rng.random() < 0.05
        details = {
            "session_id": sid,
            "organizer_id": rng.choice(self.organizer_ids),
            "title": f"Session {n}",
            "field": rng.choice(FIELDS),
            "year": year,
            "start_date": f"{year}-05-10",
            "end_date": f"{year}-05-30",
            "venue_city": "Hangzhou",
            "venue_country": rng.choice(self.countries) if overseas else "CN",
            "overseas": overseas,
            "capacity": capacity,
            "languages": ["en"],
            "description": None,
            "review_required": False,
            "country_limit": None,
        }
        reg = "tpp.registry.session."
        yield self.envelope(
            TOPICS[2], sid, reg + "created.v1", details | {"version": 1, "status": "draft"}
        )
        yield self.envelope(
            TOPICS[2], sid, reg + "published.v1", details | {"version": 2, "status": "published"}
        )
        for version, step, status in (
            (3, "enrollment_closed", "enrollment_closed"),
            (4, "started", "in_progress"),
        ):
            yield self.envelope(
                TOPICS[2],
                sid,
                reg + step + ".v1",
                {"session_id": sid, "version": version, "status": status},
            )
        cancelled = rng.random() < 0.04
        enrolled = rng.sample(trainees, capacity - rng.randint(0, 6) + (0 if cancelled else 3))
        en = "tpp.enrollment."
        for k, (trainee_id, country, gender, profession) in enumerate(enrolled):
            eid = self._id()
            base = {
                "enrollment_id": eid,
                "session_id": sid,
                "trainee_id": trainee_id,
                "country": country,
                "gender": gender,
                "profession": profession,
            }
            if k >= capacity:
                yield self.envelope(
                    TOPICS[4],
                    sid,
                    en + "enrollment.waitlisted.v1",
                    base | {"previous_status": None, "position": k - capacity + 1},
                )
                continue
            yield self.envelope(
                TOPICS[4],
                sid,
                en + "enrollment.accepted.v1",
                base | {"previous_status": None, "promoted_from_waitlist": False},
            )
            if cancelled:
                yield self.envelope(
                    TOPICS[4],
                    sid,
                    en + "enrollment.cancelled.v1",
                    base | {"previous_status": "accepted", "reason": "session_cancelled"},
                )
                continue
            if rng.random() < 0.06:
                yield self.envelope(
                    TOPICS[4],
                    sid,
                    en + "enrollment.no_show.v1",
                    base | {"previous_status": "accepted"},
                )
                continue
            yield self.envelope(
                TOPICS[4],
                sid,
                en + "enrollment.attended.v1",
                base | {"previous_status": "accepted", "checked_in_at": self.time.isoformat()},
            )
            yield self.envelope(
                TOPICS[4],
                sid,
                en + "enrollment.completed.v1",
                base
                | {
                    "previous_status": "attended",
                    "certificate_number": f"C-{eid[:8]}",
                    "completed_on": f"{year}-05-30",
                },
            )
            if rng.random() < 0.7:
                yield self.envelope(
                    TOPICS[4],
                    sid,
                    en + "evaluation.submitted.v1",
                    base
                    | {
                        "evaluation_id": self._id(),
                        "score": rng.randint(2, 5),
                        "has_comment": False,
                    },
                )
            if rng.random() < 0.5:
                yield self.envelope(
                    TOPICS[4],
                    sid,
                    en + "follow_up.recorded.v1",
                    base
                    | {
                        "follow_up_id": self._id(),
                        "followed_up_on": f"{year}-11-02",
                        "channel": "email",
                        "outcome": rng.choice(OUTCOMES),
                    },
                )
        if cancelled:
            yield self.envelope(
                TOPICS[2],
                sid,
                reg + "cancelled.v1",
                {
                    "session_id": sid,
                    "version": 5,
                    "status": "cancelled",
                    "reason": "organizer withdrew",
                    "previous_status": "in_progress",
                },
            )
        else:
            yield self.envelope(
                TOPICS[2],
                sid,
                reg + "completed.v1",
                {"session_id": sid, "version": 5, "status": "completed"},
            )


async def load(kafka: KafkaSettings, prefix: str, events: Events, limit: int) -> int:
    """Produce up to ``limit`` events; returns how many."""
    producer = AIOKafkaProducer(
        **kafka.client_options(), linger_ms=20, max_batch_size=1 << 20, acks=1
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for topic, key, value in events:
            pending.append(await producer.send(prefix + topic, value=value, key=key))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
            if sent >= limit:
                break
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
