"""The alumni service on the real platform topics (Kafka) and its own PostgreSQL database, as
the platform's read-only subscriber principal.

Run by the platform's tests/integration/test_alumni_example.py, which builds the contracts
wheel, installs this project from it and sets ``ALUMNI_*`` (the subscriber principal, a topic
prefix, a database) and ``ALUMNI_TEST_PRODUCER_*`` (a principal that may write the topics,
standing in for the platform's services).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from tpp_contracts import (
    EnrollmentCompletedV1,
    Event,
    SessionCreatedV1,
    TechnicalField,
    encode,
    wrap,
)
from tpp_contracts.examples import example

from alumni.app import create_app
from alumni.config import Settings

pytestmark = pytest.mark.skipif(
    "ALUMNI_TEST_PRODUCER_USERNAME" not in os.environ,
    reason="needs the platform's Kafka and PostgreSQL: see this module's docstring",
)


def settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    s = settings()
    producer = AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap,
        security_protocol=s.kafka_security_protocol,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=os.environ["ALUMNI_TEST_PRODUCER_USERNAME"],
        sasl_plain_password=os.environ["ALUMNI_TEST_PRODUCER_PASSWORD"],
        acks="all",
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def publish(producer: AIOKafkaProducer, value: bytes, event: Event) -> None:
    """Send a record as the platform's relay does: keyed, CloudEvents content type."""
    topic = settings().topic_prefix + event.topic.name
    headers = [("content-type", b"application/cloudevents+json")]
    await producer.send_and_wait(topic, value=value, key=event.key().encode(), headers=headers)


async def until(
    http: httpx.AsyncClient, by: str, done: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    """The roster's first answer for which ``done`` holds (within 60 s: a consumer joining its
    group on a loaded machine), else the last one."""
    deadline = time.monotonic() + 60
    while True:
        got: dict[str, int] = (await http.get("/alumni", params={"by": by})).json()["completions"]
        if done(got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


async def answer(http: httpx.AsyncClient, by: str, want: dict[str, int]) -> dict[str, int]:
    """The roster's answer once it equals ``want``, else the last one."""
    return await until(http, by, lambda got: got == want)


@pytest.fixture
async def running() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alumni") as http,
    ):
        yield http


async def test_completions_counted_once_by_country_and_field(
    running: httpx.AsyncClient, producer: AIOKafkaProducer
) -> None:
    session = example(SessionCreatedV1, session_id=uuid.uuid4(), field=TechnicalField.NEW_ENERGY)
    kenya = example(EnrollmentCompletedV1, session_id=session.session_id, country="KE")
    nigeria = example(
        EnrollmentCompletedV1,
        session_id=session.session_id,
        enrollment_id=uuid.uuid4(),
        country="NG",
    )
    await publish(producer, encode(wrap(session, source="registry")), session)
    once = encode(wrap(kenya, source="enrollment"))
    await publish(producer, once, kenya)
    await publish(producer, once, kenya)  # delivered again (at least once): same event id
    unknown = json.loads(encode(wrap(nigeria, source="enrollment")))
    unknown["type"] = "tpp.enrollment.enrollment.framed.v1"  # a type this version never saw
    await publish(producer, json.dumps(unknown).encode(), nigeria)
    await publish(producer, encode(wrap(nigeria, source="enrollment")), nigeria)

    assert await answer(running, "country", {"KE": 1, "NG": 1}) == {"KE": 1, "NG": 1}
    assert await answer(running, "field", {"new_energy": 2}) == {"new_energy": 2}


async def test_a_restart_counts_nothing_twice(producer: AIOKafkaProducer) -> None:
    first = example(EnrollmentCompletedV1, enrollment_id=uuid.uuid4(), country="VN")
    value = encode(wrap(first, source="enrollment"))
    app = create_app(settings())
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")
        await publish(producer, value, first)
        before = await until(http, "country", lambda got: "VN" in got)
        assert before.get("VN") == 1

    await publish(producer, value, first)  # the same event again while we were down
    app = create_app(settings())
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")
        second = example(EnrollmentCompletedV1, enrollment_id=uuid.uuid4(), country="VN")
        await publish(producer, encode(wrap(second, source="enrollment")), second)
        want = before | {"VN": 2}
        assert await answer(http, "country", want) == want
