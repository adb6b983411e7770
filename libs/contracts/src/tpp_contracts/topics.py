"""Kafka topics of the platform: names, partition counts and what each is keyed by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topic:
    """One event stream: its name, how many partitions it has and which id keys it."""

    name: str
    key: str
    partitions: int = 6


ORGANIZERS = Topic("registry.organizers.v1", key="organizer_id")
PLANS = Topic("registry.plans.v1", key="year")
SESSIONS = Topic("registry.sessions.v1", key="session_id")
TRAINEES = Topic("enrollment.trainees.v1", key="trainee_id")
# Every decision about a session's places is ordered: enrollment events are keyed by session id.
ENROLLMENTS = Topic("enrollment.enrollments.v1", key="session_id")

ALL: tuple[Topic, ...] = (ORGANIZERS, PLANS, SESSIONS, TRAINEES, ENROLLMENTS)


def main() -> None:
    """Print `name partitions` for each topic, for the stack script that creates them."""
    for topic in ALL:
        print(topic.name, topic.partitions)


if __name__ == "__main__":
    main()
