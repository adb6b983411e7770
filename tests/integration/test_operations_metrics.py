"""Prometheus metrics and readiness: HTTP, events, consumer lag, outbox backlog, dead letters."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import SESSIONS
from tpp_enrollment.store import tables as enrollment_tables
from tpp_plumbing.db.engine import create_engine, session_factory
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.runtime import Runtime, Subscription
from tpp_plumbing.settings import ServiceSettings
from tpp_plumbing.web.routing import add_routes

from .operations_support import accepted, created, enroll_journey, own_topics, produce, scratch

pytestmark = pytest.mark.integration

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def scrape(service: Any) -> dict[str, list[Any]]:
    """The samples of a service's /metrics, by metric family name."""
    response = await service.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list[Any], name: str, **labels: str) -> float:
    return float(
        sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())
    )


async def test_each_service_exposes_http_event_lag_and_outbox_metrics_without_personal_data(
    platform: Any, eventually: Any
) -> None:
    journey = await enroll_journey(platform, eventually)
    for service in (platform.registry, platform.enrollment, platform.reporting):
        await service.runtime.measure()
    registry, enrollment, reporting = (
        await scrape(platform.registry),
        await scrape(platform.enrollment),
        await scrape(platform.reporting),
    )

    # HTTP latency and status, under the route template (never a path with ids).
    http = enrollment["tpp_http_request_duration_seconds"]
    assert (
        value(
            http,
            "tpp_http_request_duration_seconds_count",
            method="POST",
            route="/sessions/{session_id}/enrollments",
            status="201",
        )
        >= 1
    )
    assert value(http, "tpp_http_request_duration_seconds_count", route="/trainees") >= 1

    # Events published (registry, enrollment) and consumed (enrollment, reporting) per type.
    published = registry["tpp_events_published"]
    assert (
        value(published, "tpp_events_published_total", type="tpp.registry.session.published.v1")
        >= 1
    )
    assert (
        value(
            enrollment["tpp_events_published"],
            "tpp_events_published_total",
            type="tpp.enrollment.enrollment.accepted.v1",
        )
        >= 1
    )
    for scraped in (enrollment, reporting):
        consumed = scraped["tpp_events_consumed"]
        assert (
            value(consumed, "tpp_events_consumed_total", type="tpp.registry.session.published.v1")
            >= 1
        )
        assert (
            value(
                scraped["tpp_consumer_outcomes"], "tpp_consumer_outcomes_total", outcome="applied"
            )
            >= 1
        )
        assert (
            value(
                scraped["tpp_consumer_transaction_duration_seconds"],
                "tpp_consumer_transaction_duration_seconds_count",
            )
            >= 1
        )
    assert (
        value(
            enrollment["tpp_event_handler_duration_seconds"],
            "tpp_event_handler_duration_seconds_count",
            type="tpp.registry.session.published.v1",
        )
        >= 1
    )

    # Consumer lag per partition of every topic the group reads, outbox backlog and age.
    lag = reporting["tpp_consumer_lag"]
    group = platform.kafka.topic("reporting")
    partitions = {
        (s.labels["topic"], s.labels["partition"]) for s in lag if s.labels["group"] == group
    }
    assert (platform.kafka.topic(SESSIONS.name), "0") in partitions
    assert len(partitions) >= 12  # at least two topics of six partitions
    for scraped in (registry, enrollment):
        assert "tpp_outbox_backlog" in scraped
        assert "tpp_outbox_oldest_unsent_age_seconds" in scraped
    assert "tpp_dead_letters" in reporting
    assert "tpp_consumer_retries" in reporting

    # Labels carry no personal data and no ids.
    for scraped in (registry, enrollment, reporting):
        for samples in scraped.values():
            for sample in samples:
                labels = " ".join(sample.labels.values())
                assert not UUID.search(labels), sample
                for secret in journey.personal.values():
                    assert secret not in labels


async def test_readiness_checks_postgresql_kafka_the_relay_and_consumers(platform: Any) -> None:
    for service, expected in [
        (platform.registry, {"postgresql", "kafka", "relay"}),
        (platform.enrollment, {"postgresql", "kafka", "relay", "consumers"}),
        (platform.reporting, {"postgresql", "kafka", "consumers"}),
    ]:
        response = await service.http.get("/health/ready")
        assert response.status_code == 200, response.text
        assert set(response.json()["checks"]) == expected
        assert (await service.http.get("/health/live")).status_code == 200


async def test_a_lagging_replica_stays_ready_and_shows_its_lag_per_partition(
    infrastructure: Any, databases: Any, eventually: Any
) -> None:
    kafka = infrastructure.kafka
    async with (
        own_topics(infrastructure, SESSIONS.name) as prefix,
        scratch(databases.create) as proj,
    ):
        held = wrap(created(uuid.uuid4()), source="/tests")
        behind = [wrap(created(uuid.uuid4()), source="/tests") for _ in range(3)]
        proj.failures[held.id] = 1  # the partition waits for a retry in 4 to 6 s
        settings = ServiceSettings(
            database_url=str(proj.engine.url.render_as_string(hide_password=False)),
            kafka=kafka.with_prefix(prefix),
            relay_enabled=False,
            consumer_backoff_s=5.0,
            lag_behind_threshold=2,
        )
        runtime = Runtime(settings, name="opslag")
        runtime.subscribe([Subscription(proj.consumer(), [SESSIONS.name])])
        app = FastAPI()
        add_routes(app, runtime.health_router())
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        await runtime.start()
        try:
            topic = prefix + SESSIONS.name
            await produce(
                kafka,
                topic,
                [(b"k", encode(e)) for e in [held, *behind]],
                partition=1,
            )

            async def tried() -> bool:
                return held.id in proj.calls

            await eventually(tried, what="the first, failing try")
            await runtime.measure()
            [runner] = runtime.runners
            assert {tp.partition: n for tp, n in runner.lag.items()} == {0: 0, 1: 4, 2: 0}
            # Behind, and still ready to serve: the lag is on its own endpoint.
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"postgresql": "ok", "kafka": "ok", "consumers": "ok"}
            lag = await http.get("/health/lag")
            assert lag.status_code == 200
            assert lag.json()["status"] == "behind"
            assert lag.json()["max_partition_lag"] == 4
            assert lag.json()["groups"][prefix + "opslag"][f"{topic}:1"] == 4
            gauge = runtime.metrics.registry.get_sample_value(
                "tpp_consumer_lag", {"group": prefix + "opslag", "topic": topic, "partition": "1"}
            )
            assert gauge == 4

            async def caught_up() -> bool:
                await runtime.measure()
                return sum(runner.lag.values()) == 0

            await eventually(caught_up, what="the retry succeeds and the lag drains")
            assert (await http.get("/health/lag")).json()["status"] == "ok"
        finally:
            await http.aclose()
            await runtime.stop()


async def test_outbox_backlog_and_age_are_measured_and_drain_when_the_relay_runs(
    platform: Any, databases: Any, eventually: Any
) -> None:
    url = await databases.create("enrollment", "_backlog")
    engine = create_engine(url)
    try:
        outbox = Outbox(enrollment_tables.outbox, source="/enrollment")
        async with session_factory(engine)() as db, db.begin():
            await outbox.add(db, [accepted(uuid.uuid4()) for _ in range(3)])
        settings = ServiceSettings(
            database_url=url, kafka=platform.kafka, relay_enabled=False, relay_poll_interval_s=0.2
        )
        idle = Runtime(settings, name="enrollment")
        await idle.measure()
        assert idle.metrics.registry.get_sample_value("tpp_outbox_backlog") == 3
        age = idle.metrics.registry.get_sample_value("tpp_outbox_oldest_unsent_age_seconds")
        assert age is not None
        assert age > 0
        assert "relay" not in await idle.readiness()
        await idle.stop()

        relaying = Runtime(settings.model_copy(update={"relay_enabled": True}), name="enrollment")
        await relaying.start()
        try:

            async def drained() -> bool:
                await relaying.measure()
                return relaying.metrics.registry.get_sample_value("tpp_outbox_backlog") == 0

            await eventually(drained, what="the relay publishes the backlog")
            assert (await relaying.readiness())["relay"] == "ok"
            assert relaying.metrics.registry.get_sample_value("tpp_outbox_relay_leader") == 1
            assert (
                relaying.metrics.registry.get_sample_value("tpp_outbox_oldest_unsent_age_seconds")
                == 0
            )
        finally:
            await relaying.stop()
        assert not relaying.relay.is_leader
    finally:
        await engine.dispose()
