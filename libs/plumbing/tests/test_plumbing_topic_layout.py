"""Topic layout: the contracts' defaults, overridden by TPP_TOPIC_* for every topic, for one
topic or for its dead-letter twin; impossible layouts are refused before any broker is asked."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS, SESSIONS
from tpp_plumbing.messaging.topic_reconcile import Report
from tpp_plumbing.messaging.topics import TopicSettings, TopicSpec, plan


def by_name(specs: list[TopicSpec]) -> dict[str, TopicSpec]:
    return {spec.name: spec for spec in specs}


@pytest.fixture(autouse=True)
def _no_topic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own TPP_TOPIC_* would change the defaults under test."""
    for key in [k for k in os.environ if k.startswith("TPP_TOPIC_")]:
        monkeypatch.delenv(key)


def test_defaults_come_from_the_contracts() -> None:
    specs = by_name(plan())
    assert len(specs) == 2 * len(ALL_TOPICS)
    for topic in ALL_TOPICS:
        for name in (topic.name, topic.name + ".dlq"):
            spec = specs[name]
            assert spec.partitions == topic.partitions == 6
            assert spec.replication_factor == 1
            # The whole history is kept (projections are rebuilt by replay).
            assert spec.configs == {
                "min.insync.replicas": "1",
                "retention.ms": "-1",
                "retention.bytes": "-1",
            }


def test_the_environment_sets_every_topics_replication(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TPP_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("TPP_TOPIC_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("TPP_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("TPP_TOPIC_CONFIGS", '{"retention.ms": "604800000"}')
    for spec in plan(TopicSettings(), prefix="p."):
        assert spec.name.startswith("p.")
        assert (spec.partitions, spec.replication_factor) == (12, 3)
        assert spec.configs["min.insync.replicas"] == "2"
        assert spec.configs["retention.ms"] == "604800000"
        assert spec.configs["retention.bytes"] == "-1"


def test_one_topic_and_its_twin_can_be_laid_out_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TPP_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv(
        "TPP_TOPIC_OVERRIDES",
        '{"enrollment.enrollments.v1": {"partitions": 24, "min_insync_replicas": 2},'
        ' "enrollment.enrollments.v1.dlq": {"partitions": 3}}',
    )
    specs = by_name(plan(TopicSettings()))
    topic, twin = specs[ENROLLMENTS.name], specs[ENROLLMENTS.name + ".dlq"]
    assert (topic.partitions, topic.configs["min.insync.replicas"]) == (24, "2")
    # The twin follows its topic (replication, min.insync) except where it has its own.
    assert (twin.partitions, twin.replication_factor) == (3, 3)
    assert twin.configs["min.insync.replicas"] == "2"
    other = specs[SESSIONS.name]
    assert (other.partitions, other.configs["min.insync.replicas"]) == (6, "1")


def test_min_insync_above_the_replication_factor_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TPP_TOPIC_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(ValueError, match=r"min.insync.replicas 2 is more than .* factor 1"):
        plan(TopicSettings())


def test_an_override_of_no_topic_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TPP_TOPIC_OVERRIDES", '{"enrollment.enrolments.v1": {"partitions": 2}}')
    with pytest.raises(ValueError, match=r"names no platform topic: enrollment\.enrolments\.v1"):
        plan(TopicSettings())


@pytest.mark.parametrize(
    ("key", "value"),
    [("TPP_TOPIC_PARTITIONS", "0"), ("TPP_TOPIC_REPLICATION_FACTOR", "0")],
)
def test_counts_below_one_are_refused(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        TopicSettings()


def test_the_report_says_what_was_done_and_refused() -> None:
    report = Report(
        total=5,
        created=["a"],
        altered={"b": {"min.insync.replicas": ("1", "2")}},
        refused={"c": "c has 6 partitions, the layout says 8: ..."},
        warnings={"d": ["d has 12 partitions, the layout says 6: ..."]},
    )
    assert not report.ok
    assert report.lines() == [
        "created a",
        "altered b: min.insync.replicas 1 -> 2",
        "warning: d has 12 partitions, the layout says 6: ...",
        "refused: c has 6 partitions, the layout says 8: ...",
        "topics: 5 in the layout, 1 created, 1 changed, 1 already as laid out, 1 refused",
    ]
