"""Retries and dead letters: poison is parked at once, transient failures are retried, redrive."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from tpp_contracts.enrollment import TraineeErasedV1
from tpp_contracts.envelope import Event, encode, wrap
from tpp_contracts.examples import example
from tpp_contracts.registry import AnnualPlanSetV1, OrganizerCreatedV1
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS, ORGANIZERS, PLANS, SESSIONS, TRAINEES
from tpp_plumbing.messaging import deadletter
from tpp_plumbing.messaging.retry import RetryPolicy
from tpp_plumbing.settings import KafkaSettings

from .operations_support import (
    OPS_YEAR,
    accepted,
    created,
    inbox_has,
    own_topics,
    produce,
    running,
    sample,
    scratch,
)

pytestmark = pytest.mark.integration


def poison_messages(good: Any) -> dict[str, bytes]:
    """One message of each poison kind, built from a valid envelope."""
    return {
        "not JSON": b"\x00not json at all",
        "not a CloudEvents envelope": b'{"specversion": "1.0", "id": "not-a-uuid"}',
        "invalid": encode(
            good.model_copy(update={"id": uuid.uuid4(), "data": {"session_id": "nope"}})
        ),
        "oversized": encode(
            good.model_copy(
                update={"id": uuid.uuid4(), "data": {**good.data, "padding": "x" * 300_000}}
            )
        ),
    }


async def dead_letters_for(
    kafka: KafkaSettings, topic: str, at_least: int, eventually: Any
) -> list[Any]:
    async def read() -> list[Any] | None:
        letters = await deadletter.read_dead_letters(kafka, deadletter.dead_letter_topic(topic))
        return letters if len(letters) >= at_least else None

    result: list[Any] = await eventually(read, within=15, what=f"{at_least} dead letters")
    return result


def good_event(topic_name: str) -> Event:
    """A valid event of the topic, about a new aggregate (sessions and plans in OPS_YEAR)."""
    events: dict[str, Callable[[], Event]] = {
        ORGANIZERS.name: lambda: example(OrganizerCreatedV1, organizer_id=uuid.uuid4()),
        PLANS.name: lambda: example(AnnualPlanSetV1, year=OPS_YEAR),
        SESSIONS.name: lambda: created(uuid.uuid4()),
        TRAINEES.name: lambda: example(TraineeErasedV1, trainee_id=uuid.uuid4()),
        ENROLLMENTS.name: lambda: accepted(uuid.uuid4()),
    }
    return events[topic_name]()


# Every topic some service consumes (reporting reads them all, enrollment the sessions).
@pytest.mark.parametrize("topic_name", [t.name for t in ALL_TOPICS])
async def test_poison_goes_to_the_dead_letter_topic_and_the_next_event_is_applied_within_5s(
    platform: Any, eventually: Any, topic_name: str
) -> None:
    event = good_event(topic_name)
    key = event.key().encode()
    good = wrap(event, source="/tests")
    unknown = good.model_copy(update={"id": uuid.uuid4(), "type": "tpp.registry.teleported.v9"})
    poison = poison_messages(good)
    topic = platform.kafka.topic(topic_name)
    await produce(
        platform.kafka,
        topic,
        [(key, value) for value in poison.values()] + [(key, encode(unknown))],
    )
    await produce(platform.kafka, topic, [(key, encode(good))])

    # Every service consuming the topic applies the good event after the poison ones.
    consumers = ["reporting"] + (["enrollment"] if topic_name == SESSIONS.name else [])
    for service in consumers:
        url = platform.urls[service]
        await eventually(
            lambda url=url: inbox_has(url, good.id),
            within=5,
            what=f"{service} applies the event after the poison",
        )
    if topic_name == SESSIONS.name:
        view = await platform.enrollment.http.get(f"/sessions/{key.decode()}")
        assert view.status_code == 200

    # Each consuming group parked each poison message once, with where and why; the unknown
    # type was ignored, not parked.
    letters = await dead_letters_for(
        platform.kafka, topic, len(poison) * len(consumers), eventually
    )
    ours = [d for d in letters if d.key == key]
    groups = {platform.kafka.topic(s) for s in consumers}
    assert {d.headers[deadletter.GROUP] for d in ours} == groups
    assert len(ours) == len(poison) * len(consumers)
    for letter in ours:
        assert letter.headers[deadletter.ORIGINAL_TOPIC] == topic
        assert letter.headers[deadletter.KIND] == "poison"
        assert letter.headers[deadletter.ATTEMPTS] == "1"
        assert int(letter.headers[deadletter.ORIGINAL_OFFSET]) >= 0
        assert letter.value in poison.values()
    reasons = sorted(d.headers[deadletter.ERROR] for d in ours)
    assert any(r.startswith("not JSON") for r in reasons)
    assert any(r.startswith("oversized") for r in reasons)
    assert any(r.startswith(f"invalid {good.type}: ") for r in reasons)
    assert all("nope" not in r for r in reasons)  # field names and kinds, never values
    assert encode(unknown) not in [d.value for d in ours]


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_a_handler_failing_twice_then_succeeding_is_applied_once(
    infrastructure: Any, databases: Any, eventually: Any, batch: bool
) -> None:
    kafka = infrastructure.kafka
    async with (
        own_topics(infrastructure, SESSIONS.name) as prefix,
        scratch(databases.create) as proj,
    ):
        topic = prefix + SESSIONS.name
        flaky = wrap(created(uuid.uuid4()), source="/tests")
        other = wrap(created(uuid.uuid4()), source="/tests")
        proj.failures[flaky.id] = 2
        retry = RetryPolicy(max_attempts=5, backoff_s=1.0)
        async with running(
            proj.consumer(),
            kafka=kafka,
            topics=[topic],
            group=prefix + "ops-retry",
            batch=batch,
            retry=retry,
        ) as (runner, metrics):
            await produce(kafka, topic, [(b"flaky", encode(flaky))], partition=0)
            await produce(kafka, topic, [(b"other", encode(other))], partition=1)

            # The other partition is not held up while the flaky event waits for its retry.
            await eventually(lambda: proj.applied(other.id), within=5, what="the other event")
            if not batch:
                assert await proj.applied(flaky.id) == 0
            await eventually(lambda: proj.applied(flaky.id), within=15, what="the flaky event")

            async def caught_up() -> bool:
                lag = await runner.measure_lag()
                return bool(lag) and sum(lag.values()) == 0

            await eventually(caught_up, what="offsets committed past both events")
        assert await proj.applied(flaky.id) == 1
        assert await proj.applied(other.id) == 1
        assert proj.calls[flaky.id] == 3  # two failures, one success: no re-seek loop
        if not batch:
            assert (
                sample(
                    metrics, "tpp_consumer_retries_total", group=prefix + "ops-retry", topic=topic
                )
                == 2
            )
        letters = await deadletter.read_dead_letters(kafka, topic + deadletter.SUFFIX)
        assert letters == []


async def test_a_handler_failing_every_time_is_parked_and_redrive_applies_it_once(
    infrastructure: Any, databases: Any, eventually: Any
) -> None:
    kafka = infrastructure.kafka
    async with (
        own_topics(infrastructure, ENROLLMENTS.name) as prefix,
        scratch(databases.create) as proj,
    ):
        topic = prefix + ENROLLMENTS.name
        session_id = uuid.uuid4()
        key = str(session_id).encode()
        broken = wrap(accepted(session_id), source="/tests")
        after = wrap(accepted(session_id), source="/tests")
        proj.failures[broken.id] = -1  # fails until fixed
        group = prefix + "ops-park"
        retry = RetryPolicy(max_attempts=3, backoff_s=0.1)
        async with running(
            proj.consumer(), kafka=kafka, topics=[topic], group=group, retry=retry
        ) as (runner, metrics):
            await produce(kafka, topic, [(key, encode(broken)), (key, encode(after))])

            # Parked after three tries; the next event of the same partition goes on.
            [letter] = await dead_letters_for(kafka, topic, 1, eventually)
            await eventually(lambda: proj.applied(after.id), within=5, what="the next event")
            assert letter.headers[deadletter.KIND] == "failed"
            assert letter.headers[deadletter.ATTEMPTS] == "3"
            assert letter.headers[deadletter.ERROR] == "handler failed: builtins.RuntimeError"
            assert letter.headers[deadletter.GROUP] == group
            assert letter.headers[deadletter.ORIGINAL_TOPIC] == topic
            assert letter.headers[deadletter.ORIGINAL_OFFSET] == "0"
            assert letter.key == key
            assert proj.calls[broken.id] == 3
            assert sample(metrics, "tpp_dead_letters_total", topic=topic, kind="failed") == 1

            # Fixed: redriving applies it once; redriving again changes nothing (inbox).
            proj.failures[broken.id] = 0
            for _ in range(2):
                redriven = await deadletter.redrive(kafka, [letter])
                assert (redriven.sent, redriven.refused) == ([letter], [])

            async def drained() -> bool:
                lag = await runner.measure_lag()
                return bool(lag) and sum(lag.values()) == 0

            await eventually(lambda: proj.applied(broken.id), what="the redriven event")
            await eventually(drained, what="both redriven copies consumed and committed")
        assert await proj.applied(broken.id) == 1
        assert await proj.applied(after.id) == 1
        assert proj.calls[broken.id] == 4  # three failures, then the first redriven copy
