"""One trace from an HTTP request through the outbox and Kafka to other services' projections."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tpp_plumbing.db.engine import create_engine
from tpp_plumbing.observability import telemetry
from tpp_plumbing.observability.sql_tracing import instrument_engine

from .operations_support import enroll_journey

pytestmark = pytest.mark.integration


@pytest.fixture
def spans(platform: Any) -> Iterator[InMemorySpanExporter]:
    """Every span the in-process platform finishes during the test."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("tracing is disabled (OTEL_SDK_DISABLED=true): no spans to follow")
    exporter = InMemorySpanExporter()
    processor = telemetry.export_to(exporter)
    assert processor is not None
    yield exporter
    processor.shutdown()


def follow() -> tuple[int, dict[str, str]]:
    """A new trace id and the W3C header that asks for it to be recorded (sampled: 01).

    A caller can ask for any request (a read too) to be recorded: the services' samplers are
    parent-based, so a sampled caller's request is always recorded.
    """
    trace_id = random.getrandbits(128) | 1
    parent = random.getrandbits(64) | 1
    return trace_id, {"traceparent": f"00-{trace_id:032x}-{parent:016x}-01"}


def service(span: ReadableSpan) -> str | None:
    value = (span.attributes or {}).get(telemetry.SERVICE_ATTRIBUTE)
    return str(value) if value is not None else None


def in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


def http_span(exporter: InMemorySpanExporter, name: str, svc: str) -> ReadableSpan:
    [span] = [
        s
        for s in exporter.get_finished_spans()
        if s.name == name and s.kind == SpanKind.SERVER and service(s) == svc
    ]
    return span


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


def consumed(spans: list[ReadableSpan], svc: str, event_type: str) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.kind == SpanKind.CONSUMER
        and service(s) == svc
        and (s.attributes or {}).get("tpp.event.type") == event_type
    ]


async def test_one_trace_runs_from_the_registry_request_to_every_projection_update(
    platform: Any, spans: InMemorySpanExporter, eventually: Any
) -> None:
    trace_id, publish_headers = follow()
    # The enrollment is sent as any client sends it, without a traceparent: the default
    # sampling records every command, so any enrollment can be followed.
    journey = await enroll_journey(platform, eventually, publish_headers=publish_headers)
    enroll_span = http_span(spans, "POST /sessions/{session_id}/enrollments", "enrollment")
    assert enroll_span.parent is None  # a new trace, recorded by the default sampler
    enroll_trace_id = enroll_span.context.trace_id
    publish = http_span(spans, "POST /sessions/{session_id}/publish", "registry")
    assert publish.context.trace_id == trace_id  # the operator's trace id, end to end

    async def followed() -> list[ReadableSpan] | None:
        found = in_trace(spans, trace_id)
        kinds = {(service(s), s.kind) for s in found}
        wanted = {
            ("registry", SpanKind.PRODUCER),
            ("enrollment", SpanKind.CONSUMER),
            ("reporting", SpanKind.CONSUMER),
        }
        return found if wanted <= kinds else None

    found = await eventually(followed, what="the publish request's trace reaches both consumers")
    event = "tpp.registry.session.published.v1"
    # The database transaction of the request, with its outbox row, is in the trace...
    # (the audit log's own insert, committed before the answer, is a transaction beside it)
    [publish_tx] = [
        s
        for s in found
        if parent_of(s, found) == publish
        and s.kind == SpanKind.CLIENT
        and not any("audit_log" in str((e.attributes or {}).get("db.statement")) for e in s.events)
    ]
    assert publish_tx.name == "transaction COMMIT"
    assert any(
        "INSERT INTO outbox_message" in str((e.attributes or {}).get("db.statement"))
        for e in publish_tx.events
    )
    # ...then the relay's publish, parented by the request...
    [produced] = [s for s in found if s.kind == SpanKind.PRODUCER and service(s) == "registry"]
    assert (produced.attributes or {})["tpp.event.type"] == event
    # ...then each consumer's projection update, parented by the publish, with its SQL.
    for svc in ("enrollment", "reporting"):
        [applied] = consumed(found, svc, event)
        assert parent_of(applied, found) == produced
        assert (applied.attributes or {})["messaging.destination.name"] == platform.kafka.topic(
            "registry.sessions.v1"
        )
    [view_update] = consumed(found, "enrollment", event)
    [view_tx] = [
        s for s in found if parent_of(s, found) == view_update and s.kind == SpanKind.CLIENT
    ]
    assert any(e.name in ("UPDATE", "INSERT") for e in view_tx.events)  # inside the consumer span

    # The enrollment request's own trace reaches reporting the same way.
    async def enrollment_followed() -> list[ReadableSpan] | None:
        found = in_trace(spans, enroll_trace_id)
        accepted = consumed(found, "reporting", "tpp.enrollment.enrollment.accepted.v1")
        return found if accepted else None

    enrolled = await eventually(enrollment_followed, what="the enrollment's trace in reporting")
    assert enroll_span in enrolled

    # No personal data in any span.
    text = repr([(s.name, dict(s.attributes or {})) for s in spans.get_finished_spans()])
    for secret in journey.personal.values():
        assert secret not in text


async def test_a_cancellation_is_one_trace_across_the_three_services(
    platform: Any, spans: InMemorySpanExporter, eventually: Any
) -> None:
    journey = await enroll_journey(platform, eventually)
    session = await platform.registry.http.get(f"/sessions/{journey.session_id}")
    _, headers = follow()
    cancelled = await platform.registry.http.post(
        f"/sessions/{journey.session_id}/cancel",
        json={"reason": "venue flooded"},
        headers={"If-Match": session.headers["etag"], **headers},
    )
    assert cancelled.status_code == 200, cancelled.text
    request = http_span(spans, "POST /sessions/{session_id}/cancel", "registry")

    async def reached_reporting() -> list[ReadableSpan] | None:
        found = in_trace(spans, request.context.trace_id)
        return (
            found
            if consumed(found, "reporting", "tpp.enrollment.enrollment.cancelled.v1")
            else None
        )

    # registry request -> registry relay -> enrollment cancels the session's enrollments
    # (its own transaction and outbox rows) -> enrollment relay -> reporting's projection.
    found = await eventually(reached_reporting, what="the cancellation's trace reaches reporting")
    [reacted] = consumed(found, "enrollment", "tpp.registry.session.cancelled.v1")
    republished = [s for s in found if s.kind == SpanKind.PRODUCER and service(s) == "enrollment"]
    assert republished
    assert all(parent_of(s, found) == reacted for s in republished)
    [projected] = consumed(found, "reporting", "tpp.enrollment.enrollment.cancelled.v1")
    assert parent_of(projected, found) in republished
    assert {service(s) for s in found} >= {"registry", "enrollment", "reporting"}


async def test_a_database_transaction_is_one_span_with_its_statements_and_never_their_values(
    databases: Any,
) -> None:
    url = await databases.create("enrollment", "_tx_spans")
    engine = create_engine(url)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_engine(engine, provider)
    tracer = provider.get_tracer("test")
    canary = f"canary-{uuid.uuid4().hex}"
    try:
        with tracer.start_as_current_span("request"):
            async with engine.begin() as conn:
                await conn.execute(text("SELECT CAST(:value AS text)"), {"value": canary})
                await conn.execute(text("SELECT count(*) FROM outbox_message"))
            with contextlib.suppress(DBAPIError):
                async with engine.begin() as conn:
                    await conn.execute(text("SELECT 1 / CAST(:zero AS int)"), {"zero": 0})
            async with engine.connect() as conn:  # a read: its transaction ends in ROLLBACK
                await conn.execute(text("SELECT 3"))
        async with engine.begin() as conn:  # no recorded span: no transaction span
            await conn.execute(text("SELECT 2"))
    finally:
        await engine.dispose()
    [request] = [s for s in exporter.get_finished_spans() if s.name == "request"]
    transactions = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert [s.name for s in transactions] == [
        "transaction COMMIT",
        "transaction ROLLBACK",
        "transaction ROLLBACK",
    ]
    committed, rolled_back, read = transactions
    assert all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in transactions
    )
    assert [e.name for e in committed.events] == ["SELECT", "SELECT"]
    assert "FROM outbox_message" in str((committed.events[1].attributes or {})["db.statement"])
    assert (committed.attributes or {})["db.statement_count"] == 2
    assert rolled_back.status.status_code == StatusCode.ERROR
    assert [e.name for e in rolled_back.events] == ["SELECT failed"]
    assert read.status.status_code == StatusCode.UNSET  # no statement failed: no error
    assert canary not in repr(
        [(s.attributes, [e.attributes for e in s.events]) for s in transactions]
    )


async def stored_traceparent(platform: Any, key: str) -> str:
    """The ``traceparent`` kept with the registry's outbox row of aggregate ``key``."""
    engine = create_engine(platform.urls["registry"])
    try:
        async with engine.connect() as conn:
            query = text("SELECT headers->>'traceparent' FROM outbox_message WHERE key = :key")
            stored = (await conn.execute(query, {"key": key})).scalar_one()
    finally:
        await engine.dispose()
    assert isinstance(stored, str)
    return stored


async def test_with_nothing_exporting_a_request_still_hands_its_trace_to_its_events(
    platform: Any,
) -> None:
    if telemetry.ExportingProcessor.live:
        pytest.skip("a span processor exports in this process: requests are recorded")

    async def organizer(headers: dict[str, str]) -> str:
        name = f"Quiet Institute {uuid.uuid4().hex[:6]}"
        body = {"name": name, "kind": "university", "country": "KE"}
        created = await platform.registry.http.post("/organizers", json=body, headers=headers)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    # A caller's trace (sampled: it may be recorded downstream) reaches the command's event
    # (its outbox row, then its Kafka headers), with the caller's choice.
    trace_id, headers = follow()
    _, propagated, _, flags = (await stored_traceparent(platform, await organizer(headers))).split(
        "-"
    )
    assert (int(propagated, 16), int(flags, 16) & 1) == (trace_id, 1)
    # Without one, the request's new trace, unsampled, for the logs and the consumers.
    _, propagated, _, flags = (await stored_traceparent(platform, await organizer({}))).split("-")
    assert int(propagated, 16) != 0
    assert int(flags, 16) & 1 == 0
