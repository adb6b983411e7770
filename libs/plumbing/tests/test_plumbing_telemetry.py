"""JSON logs with trace ids, exporter choice from OTEL_* variables, texts withheld from spans."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from fastapi import FastAPI, Response
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tpp_plumbing.observability import logs, telemetry
from tpp_plumbing.observability.http_tracing import instrument_app
from tpp_plumbing.observability.metrics import HttpMetricsMiddleware, Metrics
from tpp_plumbing.observability.otlp import JsonSpanExporter


def json_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.Formatter("enrollment"))
    handler.addFilter(logs.TraceContextFilter())
    logger = logging.getLogger("tpp.test.json")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_log_lines_are_json_with_trace_ids_and_the_records_context() -> None:
    logger, stream = json_logger()
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("apply") as span:
        logger.warning(
            "message parked on the dead-letter topic",
            extra={"topic": "registry.sessions.v1", "partition": 3, "offset": 41, "event_id": "e1"},
        )
    logger.info("outside any span")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "message parked on the dead-letter topic"
    assert inside["level"] == "WARNING"
    assert inside["service"] == "enrollment"
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert (inside["topic"], inside["partition"], inside["offset"]) == (
        "registry.sessions.v1",
        3,
        41,
    )
    assert inside["event_id"] == "e1"
    assert "trace_id" not in outside


def test_the_servers_access_lines_are_dropped_as_they_hold_raw_paths() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("uvicorn.access")
    handler = logs.json_handler("enrollment", stream)
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/trainees/Wanjiru%20Kamau?country=KE",
            "1.1",
            404,
        )
    finally:
        logger.removeHandler(handler)
        logger.level = level
    assert stream.getvalue() == ""


def test_configured_logging_leaves_uvicorn_no_access_log_to_write() -> None:
    root = logging.getLogger()
    access = logging.getLogger("uvicorn.access")
    saved = (list(root.handlers), root.level, list(access.handlers), access.propagate)
    root.handlers = []
    try:
        logs.configure_logging("enrollment")
        # uvicorn writes its access lines only when the logger has handlers (up the tree).
        assert not access.hasHandlers()
        assert logging.getLogger("uvicorn.error").propagate
    finally:
        root.handlers, root.level, access.handlers, access.propagate = saved


async def test_the_access_log_names_the_route_template_and_status_not_the_path() -> None:
    app = FastAPI()

    @app.get("/trainees/{trainee_id}")
    async def trainee(trainee_id: str) -> Response:
        return Response(status_code=404)

    app.add_middleware(HttpMetricsMiddleware, metrics=Metrics("test"), access_log=True)
    stream = io.StringIO()
    logger = logging.getLogger("tpp.access")
    handler = logs.json_handler("enrollment", stream)
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/trainees/Wanjiru%20Kamau", params={"email": "wk@example.org"})
    finally:
        logger.removeHandler(handler)
        logger.level = level
    line = json.loads(stream.getvalue())
    assert line["message"] == "GET /trainees/{trainee_id} 404"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/trainees/{trainee_id}", 404)
    assert "Wanjiru" not in stream.getvalue()
    assert "example.org" not in stream.getvalue()


def test_exceptions_are_logged_with_their_type_and_frames_but_not_their_message() -> None:
    logger, stream = json_logger()
    try:
        raise ValueError("duplicate passport P1234567 of Amina Njoroge")
    except ValueError:
        logger.exception("unhandled error")
    line = json.loads(stream.getvalue())
    assert "builtins.ValueError (message withheld)" in line["exc_info"]
    assert "test_plumbing_telemetry.py" in line["exc_info"]
    assert "Amina" not in stream.getvalue()
    assert "P1234567" not in stream.getvalue()


def test_spans_lose_exception_messages_and_status_texts_before_export() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(telemetry.WithholdingProcessor(SimpleSpanProcessor(exporter)))
    tracer = provider.get_tracer("test")
    with pytest.raises(ValueError, match="Amina"), tracer.start_as_current_span("POST /trainees"):
        raise ValueError("Key (email)=(amina@example.org) already exists; Amina")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert not span.status.description
    [event] = span.events
    assert event.name == "exception"
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"] == "ValueError"
    assert "exception.message" not in attributes
    assert "exception.stacktrace" not in attributes
    assert "amina" not in repr(span.to_json()).lower()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, JsonSpanExporter),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
            JsonSpanExporter,
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            OTLPSpanExporter,
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            JsonSpanExporter,
        ),
        ({"OTEL_TRACES_EXPORTER": "console"}, ConsoleSpanExporter),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, None),
    ],
)
def test_the_exporter_is_chosen_by_the_standard_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: type | None
) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exporter = telemetry._exporter_from_env()
    if expected is None:
        assert exporter is None
        return
    assert exporter is not None
    assert isinstance(exporter, expected)
    exporter.shutdown()


def test_trace_context_travels_in_kafka_headers() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("publish") as span:
        headers = telemetry.kafka_trace_headers(span)
    context = telemetry.kafka_headers_context([("content-type", b"x"), *headers])
    assert context is not None
    with tracer.start_as_current_span("process", context=context) as child:
        assert child.get_span_context().trace_id == span.get_span_context().trace_id
    assert telemetry.kafka_headers_context([("content-type", b"x")]) is None


def test_by_default_every_command_a_tenth_of_other_new_traces_and_any_sampled_caller_are_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    sampler = telemetry.default_sampler(0.1)
    assert sampler is not None
    provider = TracerProvider(sampler=sampler)
    exporting = telemetry.ExportingProcessor(SimpleSpanProcessor(InMemorySpanExporter()))
    provider.add_span_processor(exporting)
    tracer = provider.get_tracer("test")

    def request(method: str, key: str = "http.request.method") -> bool:
        span = tracer.start_span(f"{method} /x", kind=SpanKind.SERVER, attributes={key: method})
        return span.is_recording()

    assert all(request(m) for m in ("POST", "PUT", "PATCH", "DELETE") for _ in range(200))
    assert all(request("post", key="http.method") for _ in range(50))  # old conventions
    reads = sum(request(m) for m in ("GET", "HEAD") for _ in range(1000))
    assert 100 < reads < 300
    roots = [tracer.start_span("relay poll") for _ in range(2000)]
    assert 100 < sum(span.is_recording() for span in roots) < 300
    caller = [("traceparent", b"00-" + b"ab" * 16 + b"-" + b"cd" * 8 + b"-01")]
    followed = tracer.start_span("request", context=telemetry.kafka_headers_context(caller))
    assert followed.is_recording()
    declined = [("traceparent", b"00-" + b"ab" * 16 + b"-" + b"cd" * 8 + b"-00")]
    command = tracer.start_span(
        "POST /x",
        context=telemetry.kafka_headers_context(declined),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST"},
    )
    assert not command.is_recording()  # a caller that declined keeps its decision
    exporting.shutdown()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    assert telemetry.default_sampler(0.1) is None  # the SDK reads the variable


def test_with_nowhere_to_export_no_new_trace_is_recorded_but_its_context_still_propagates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    sampler = telemetry.default_sampler(1.0)
    assert sampler is not None
    provider = TracerProvider(sampler=sampler)
    tracer = provider.get_tracer("test")

    def command() -> trace.Span:
        attributes = {"http.request.method": "POST"}
        return tracer.start_span("POST /x", kind=SpanKind.SERVER, attributes=attributes)

    idle = command()
    assert not idle.is_recording()
    assert idle.get_span_context().is_valid  # a trace id for the logs and the outbox row
    with trace.use_span(idle):
        headers = telemetry.inject()
    trace_id = f"{idle.get_span_context().trace_id:032x}"
    _, propagated, _, flags = headers["traceparent"].split("-")
    assert (propagated, int(flags, 16) & 1) == (trace_id, 0)  # the same trace, not sampled
    exporter = InMemorySpanExporter()
    exporting = telemetry.ExportingProcessor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(exporting)
    recorded = command()
    assert recorded.is_recording()
    recorded.end()
    assert [s.name for s in exporter.get_finished_spans()] == ["POST /x"]
    exporting.shutdown()  # e.g. a test's exporter removed: back to recording nothing
    assert not command().is_recording()


async def test_each_request_has_one_server_span_named_after_its_route() -> None:
    provider = telemetry.configure_tracing("plumbing-tests", 1.0)
    if not isinstance(provider, TracerProvider):
        pytest.skip("tracing is disabled (OTEL_SDK_DISABLED=true): no spans to look at")
    app = FastAPI(telemetry=telemetry.FASTAPI_TELEMETRY_OFF)

    @app.post("/items/{item_id}", status_code=201)
    async def add(item_id: int) -> dict[str, str]:
        return {"trace": str(telemetry.current_ids())}

    @app.post("/broken")
    async def broken() -> None:
        raise RuntimeError("row (alice@example.org) failed")

    @app.post("/unavailable")
    async def unavailable() -> Response:
        return Response(status_code=503)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    instrument_app(app, "plumbing-tests")
    exporter = InMemorySpanExporter()
    processor = telemetry.export_to(exporter)
    assert processor is not None
    caller_trace, caller_span = "ab" * 16, "cd" * 8
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            added = await client.post(
                "/items/7?email=alice@example.org",
                headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
            )
            assert (await client.post("/broken")).status_code == 500
            assert (await client.post("/unavailable")).status_code == 503
            assert (await client.get("/health/live")).status_code == 200
    finally:
        processor.shutdown()
    assert added.status_code == 201
    spans = {s.name: s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER}
    assert set(spans) == {"POST /items/{item_id}", "POST /broken", "POST /unavailable"}
    request = spans["POST /items/{item_id}"]
    assert dict(request.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "/items/{item_id}",
        "url.scheme": "http",
        "http.response.status_code": 201,
        telemetry.SERVICE_ATTRIBUTE: "plumbing-tests",
    }
    # The caller's trace goes on, and the endpoint runs inside the request's span.
    assert format(request.context.trace_id, "032x") == caller_trace
    assert request.parent is not None
    assert format(request.parent.span_id, "016x") == caller_span
    assert added.json()["trace"] == str((caller_trace, format(request.context.span_id, "016x")))
    assert request.status.status_code == StatusCode.UNSET
    failed = spans["POST /broken"]
    assert failed.status.status_code == StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in failed.events if e.attributes] == [
        "RuntimeError"
    ]
    assert "alice" not in repr([dict(e.attributes or {}) for e in failed.events])
    refused = spans["POST /unavailable"]
    assert refused.status.status_code == StatusCode.ERROR
    assert (refused.attributes or {})["http.response.status_code"] == 503
