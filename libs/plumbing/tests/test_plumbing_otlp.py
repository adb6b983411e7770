"""The OTLP/JSON exporter: the SDK's protobuf request in JSON, sent as a collector expects."""

from __future__ import annotations

import base64
import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import orjson
import pytest
from google.protobuf import json_format  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from tpp_plumbing.observability import otlp


def sample_spans() -> tuple[ReadableSpan, ...]:
    """Spans with every kind of field the platform's spans use, and a few more."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "enrollment"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tpp_plumbing", "1.2", schema_url="https://x/schemas/1.26.0")
    caller = SpanContext(
        0xAB * (1 << 120) + 5,
        0xCD * (1 << 56) + 7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1")]),
    )
    with tracer.start_as_current_span(
        "POST /sessions/{session_id}/enrollments",
        context=set_span_in_context(NonRecordingSpan(caller)),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "http.response.status_code": 201,
            "db.duration_ms": 0.25,
            "tpp.retried": False,
            "tpp.tags": ("a", "b"),
            "tpp.counts": (1, 2, 3),
        },
    ) as request:
        with tracer.start_as_current_span("statements", kind=SpanKind.CLIENT) as statements:
            statements.add_event("SELECT", {"db.statement": "SELECT 1", "db.duration_ms": 0.1})
            statements.add_event("INSERT", {"db.statement": "INSERT INTO t VALUES ($1)"})
        request.set_status(Status(StatusCode.ERROR, "withheld in production"))
    tracer.start_span(
        "relay batch",
        kind=SpanKind.PRODUCER,
        links=[Link(caller, {"tpp.event.type": "EnrollmentAccepted"}), Link(caller)],
    ).end()
    other = TracerProvider(resource=Resource.create({"service.name": "reporting"}))
    other.add_span_processor(SimpleSpanProcessor(exporter))
    other.get_tracer("tpp_reporting").start_span("apply", kind=SpanKind.CONSUMER).end()
    return exporter.get_finished_spans()


def as_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse OTLP/JSON with protobuf's own JSON parser (ids are hex in OTLP, base64 there)."""

    def ids_to_base64(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64encode(bytes.fromhex(v)).decode()
                if k in ("traceId", "spanId", "parentSpanId")
                else ids_to_base64(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [ids_to_base64(v) for v in node]
        return node

    request = ExportTraceServiceRequest()
    json_format.ParseDict(ids_to_base64(orjson.loads(body)), request)
    return request


def test_the_json_says_what_the_sdks_protobuf_encoding_says() -> None:
    spans = sample_spans()
    assert len(spans) == 4
    assert as_protobuf(otlp.encode(spans)) == encode_spans(spans)


def test_ids_are_hex_and_64_bit_integers_are_strings_as_otlp_json_requires() -> None:
    spans = sample_spans()
    request = orjson.loads(otlp.encode(spans))
    [enrollment, reporting] = request["resourceSpans"]
    [scope] = enrollment["scopeSpans"]
    assert scope["scope"] == {"name": "tpp_plumbing", "version": "1.2"}
    by_name = {s["name"]: s for s in scope["spans"]}
    server = by_name["POST /sessions/{session_id}/enrollments"]
    assert server["traceId"] == format(0xAB * (1 << 120) + 5, "032x")
    assert server["parentSpanId"] == format(0xCD * (1 << 56) + 7, "016x")
    assert server["kind"] == 2  # SPAN_KIND_SERVER
    assert server["flags"] == 0x300  # the parent is known to be remote
    assert server["startTimeUnixNano"] == str(spans[1].start_time)
    assert {"key": "http.response.status_code", "value": {"intValue": "201"}} in server[
        "attributes"
    ]
    assert server["status"] == {"code": 2, "message": "withheld in production"}
    assert by_name["statements"]["flags"] == 0x100  # a local parent
    assert [s["name"] for s in reporting["scopeSpans"][0]["spans"]] == ["apply"]


class Collector(BaseHTTPRequestHandler):
    """Answers the statuses in ``answers`` in turn (then 200); keeps every request."""

    protocol_version = "HTTP/1.1"
    answers: ClassVar[list[int]] = []
    retry_after = "0"
    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        Collector.received.append((self.path, dict(self.headers), body))
        status = Collector.answers.pop(0) if Collector.answers else 200
        self.send_response(status)
        if status == 503:
            self.send_header("retry-after", Collector.retry_after)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Collector.answers, Collector.received, Collector.retry_after = [], [], "0"
    for name in ("ENDPOINT", "HEADERS", "COMPRESSION", "TIMEOUT"):
        monkeypatch.delenv(f"OTEL_EXPORTER_OTLP_TRACES_{name}", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-tenant=center")
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_batch_is_posted_to_v1_traces_with_the_configured_headers(collector: str) -> None:
    exporter = otlp.JsonSpanExporter()
    spans = sample_spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert exporter.export(spans) is SpanExportResult.FAILURE  # after shutdown
    [(path, headers, body), _] = Collector.received
    assert path == "/v1/traces"
    assert headers["Content-Type"] == "application/json"
    assert (headers["api-key"], headers["x-tenant"]) == ("s=cret", "center")
    assert as_protobuf(body) == encode_spans(spans)


def test_a_busy_collector_is_retried_and_a_refusal_drops_the_batch(
    collector: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    exporter = otlp.JsonSpanExporter()
    spans = sample_spans()
    Collector.answers = [503, 503]
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert len(Collector.received) == 3  # two refusals, then accepted
    _, headers, body = Collector.received[-1]
    assert headers["Content-Encoding"] == "gzip"
    assert as_protobuf(gzip.decompress(body)) == encode_spans(spans)
    Collector.answers = [400]
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert len(Collector.received) == 4  # a bad request is not retried
    assert "span export refused (HTTP 400), 4 spans dropped" in caplog.text
    exporter.shutdown()


def test_a_long_retry_after_holds_the_export_thread_two_seconds_not_an_hour(
    collector: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    # urllib3's Retry waits with time.sleep: record the wait instead of waiting.
    monkeypatch.setattr("urllib3.util.retry.time.sleep", waits.append)
    exporter = otlp.JsonSpanExporter()
    Collector.answers, Collector.retry_after = [503], "3600"
    assert exporter.export(sample_spans()) is SpanExportResult.SUCCESS
    assert len(Collector.received) == 2
    assert waits == [2]  # the collector's hour, capped at 2 s
    exporter.shutdown()
