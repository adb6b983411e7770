"""Kafka topics of the platform: names, partition counts and what each is keyed by.

A topic's partition count is part of its contract: events are keyed by an id, and the key
chooses the partition, so per-key order holds only while the count stays the same. The
replication defaults below suit one broker; a cluster overrides them by settings
(``tpp_plumbing.messaging.topics``), never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Topic:
    """One event stream: its name, how many partitions it has and which id keys it."""

    name: str
    key: str
    partitions: int = 6


#: The whole history is kept: projections are rebuilt by replaying topics from the beginning.
KEEP_HISTORY: Final = MappingProxyType({"retention.ms": "-1", "retention.bytes": "-1"})


@dataclass(frozen=True, slots=True)
class Layout:
    """How a topic is laid out on the brokers: what deployment settings may override."""

    partitions: int
    replication_factor: int = 1
    min_insync_replicas: int = 1
    #: Topic-level Kafka configs besides ``min.insync.replicas``.
    configs: Mapping[str, str] = field(default_factory=lambda: KEEP_HISTORY)


ORGANIZERS = Topic("registry.organizers.v1", key="organizer_id")
PLANS = Topic("registry.plans.v1", key="year")
SESSIONS = Topic("registry.sessions.v1", key="session_id")
TRAINEES = Topic("enrollment.trainees.v1", key="trainee_id")
# Every decision about a session's places is ordered: enrollment events are keyed by session id.
ENROLLMENTS = Topic("enrollment.enrollments.v1", key="session_id")

ALL: tuple[Topic, ...] = (ORGANIZERS, PLANS, SESSIONS, TRAINEES, ENROLLMENTS)


def default_layout(topic: Topic) -> Layout:
    """The contracts' layout of ``topic`` (and of its dead-letter twin)."""
    return Layout(partitions=topic.partitions)


def main() -> None:
    """Print `name partitions` for each topic."""
    for topic in ALL:
        print(topic.name, topic.partitions)


if __name__ == "__main__":
    main()
