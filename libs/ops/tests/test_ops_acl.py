"""The platform's ACL layout, built from the services' declarations, grants each principal
exactly what it needs: its own topics, what it consumes and their dead letters, its group."""

from __future__ import annotations

import pytest
from tpp_ops import acl

NAMES = {"registry": "r", "enrollment": "e", "reporting": "x", "ops": "o", "subscriber": "s"}
EVENT_TOPICS = (
    "registry.organizers.v1",
    "registry.plans.v1",
    "registry.sessions.v1",
    "enrollment.trainees.v1",
    "enrollment.enrollments.v1",
)


def granted(user: str) -> set[str]:
    return {str(b) for b in acl.layout("p.", NAMES) if b.principal == f"User:{user}"}


def both(user: str, ops: tuple[str, str], resource: str) -> set[str]:
    return {f"User:{user} {op} {resource}" for op in ops}


READ, WRITE = ("READ", "DESCRIBE"), ("WRITE", "DESCRIBE")


def test_the_registry_writes_its_own_topics_and_reads_nothing() -> None:
    assert granted("r") == both("r", WRITE, "TOPIC PREFIXED:p.registry.")


def test_the_enrollment_service_writes_its_topics_and_reads_the_sessions() -> None:
    assert granted("e") == (
        both("e", WRITE, "TOPIC PREFIXED:p.enrollment.")
        | both("e", READ, "TOPIC LITERAL:p.registry.sessions.v1")
        | both("e", WRITE, "TOPIC LITERAL:p.registry.sessions.v1.dlq")
        | both("e", READ, "GROUP PREFIXED:p.enrollment")
    )


def test_reporting_reads_every_event_topic_and_writes_only_their_dead_letters() -> None:
    expected = both("x", READ, "GROUP PREFIXED:p.reporting")
    for topic in EVENT_TOPICS:
        expected |= both("x", READ, f"TOPIC LITERAL:p.{topic}")
        expected |= both("x", WRITE, f"TOPIC LITERAL:p.{topic}.dlq")
    assert granted("x") == expected


def test_subscribers_read_the_event_topics_in_their_own_groups() -> None:
    expected = both("s", READ, "GROUP PREFIXED:p.s.")
    for topic in EVENT_TOPICS:
        expected |= both("s", READ, f"TOPIC LITERAL:p.{topic}")
    assert granted("s") == expected


def test_operators_may_do_anything_under_the_prefix() -> None:
    assert granted("o") == (
        {f"User:o {op} TOPIC PREFIXED:p." for op in ("READ", "WRITE", "DESCRIBE")}
        | {f"User:o {op} GROUP PREFIXED:p." for op in ("READ", "DESCRIBE", "DELETE")}
    )


@pytest.mark.parametrize("left_out", sorted(NAMES))
def test_a_role_left_out_gets_nothing(left_out: str) -> None:
    names = {role: user for role, user in NAMES.items() if role != left_out}
    assert not [b for b in acl.layout("p.", names) if b.principal == f"User:{NAMES[left_out]}"]
