"""Tracing: one OpenTelemetry trace from an HTTP request through the outbox and Kafka.

The trace context travels as W3C ``traceparent``/``tracestate``: a use case's span context
is stored in the outbox row's ``headers``; the relay publishes each row in a PRODUCER span
that is a child of it and puts that span's context in the Kafka headers; consumers continue
the trace from those headers (see ``tpp_plumbing.messaging.consumer``).

Configuration is the standard ``OTEL_*`` environment: ``OTEL_SDK_DISABLED=true`` turns
tracing off; ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` choose sampling. Without
them, the platform's default (``CommandsAndRatio``, parent-based) records **every command**
(an HTTP request that is not GET, HEAD or OPTIONS), so an operator can follow any enrollment
from the click to the dashboard, and ``trace_sample_ratio`` (10%) of the other new traces
(reads, which are many and change nothing). A request that arrives with a ``traceparent``
follows its caller's decision. Spans are exported with OTLP/HTTP (JSON,
``tpp_plumbing.observability.otlp``;
``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`` for the SDK's protobuf exporter)
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, to
the console with ``OTEL_TRACES_EXPORTER=console``, and nowhere otherwise. With nowhere to send
them, new traces are not recorded at all (recording spans nobody reads cost an enrollment
command about half its CPU); their context still propagates, so trace ids still reach the
logs, the outbox rows and the Kafka headers.

Exception messages and status descriptions are dropped before export: database drivers put
row values (possibly personal data) in them; the exception type stays.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, Span, SpanKind, Status
from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)

TRACER_NAME = "tpp_plumbing"
#: Span attribute naming the platform service that made a span (several may share a process).
SERVICE_ATTRIBUTE = "tpp.service"
TRACE_HEADERS = ("traceparent", "tracestate")
_WITHHELD = ("exception.message", "exception.stacktrace")


def enabled() -> bool:
    """False when ``OTEL_SDK_DISABLED`` is true: no spans, no instrumentation."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


@functools.cache
def tracer() -> trace.Tracer:
    """The platform's tracer (a proxy, no-op until a provider is configured), made once:
    the SDK's ``get_tracer`` builds a new tracer on every call, too dear for the relay,
    which asks for one per published row."""
    return trace.get_tracer(TRACER_NAME)


#: FastAPI's own telemetry (``FastAPI(telemetry=...)``, on by default since 0.16x) is off in
#: every service: the HTTP spans come from ``TracingMiddleware`` (one server span per
#: request, with the attributes the sampler reads), and FastAPI's exception logs
#: would carry exception messages (row values, possibly personal data) to a logger provider.
FASTAPI_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def configure_tracing(service: str, sample_ratio: float = 0.1) -> TracerProvider | None:
    """Install the process's tracer provider from the ``OTEL_*`` environment (once).

    ``sample_ratio`` is the share of new traces recorded when ``OTEL_TRACES_SAMPLER`` is
    unset. Returns the SDK provider, or None when tracing is disabled. A provider installed
    earlier (by another service of the same process, or by a test) is reused.
    """
    if not enabled():
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource, sampler=default_sampler(sample_ratio))
    exporter = _exporter_from_env()
    if exporter is not None:
        provider.add_span_processor(ExportingProcessor(BatchSpanProcessor(exporter)))
    trace.set_tracer_provider(provider)
    return provider


def default_sampler(sample_ratio: float) -> Sampler | None:
    """Parent-based: every new command trace, ``sample_ratio`` of the other new traces;
    None (the SDK reads it) when ``OTEL_TRACES_SAMPLER`` is set."""
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(CommandsAndRatio(sample_ratio))


#: HTTP methods that change nothing: their traces are sampled at the ratio.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class CommandsAndRatio(Sampler):
    """Root sampler: records every HTTP command's trace, a ratio of every other new trace;
    none while no span processor exports (``export_to``, an ``OTEL_*`` exporter).

    ``TracingMiddleware`` passes the request method among the server span's start attributes
    (``http.request.method``; ``http.method`` under the old conventions is read too).
    """

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if not ExportingProcessor.live:
            return _NOT_RECORDED  # nothing would read the spans: the context alone propagates
        if kind is SpanKind.SERVER and attributes:
            method = attributes.get("http.request.method") or attributes.get("http.method")
            if isinstance(method, str) and method.upper() not in _READS:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
        return self._ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"CommandsAndRatio{{{self._ratio.rate}}}"


#: OTLP's JSON encoding over HTTP unless ``OTEL_EXPORTER_OTLP_PROTOCOL`` says otherwise: it
#: costs a third of the protobuf exporter's CPU per span (``tpp_plumbing.observability.otlp``).
DEFAULT_PROTOCOL = "http/json"


def _exporter_from_env() -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint and choice != "otlp":
        return None
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or DEFAULT_PROTOCOL
    ).strip()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*
    if protocol != "http/json":
        log.warning("OTLP protocol %s is not installed; exporting with http/json", protocol)
    from tpp_plumbing.observability.otlp import JsonSpanExporter

    return JsonSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*


def export_to(exporter: SpanExporter) -> SpanProcessor | None:
    """Also send every finished span to ``exporter`` (synchronously; tests use it)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return None
    processor = ExportingProcessor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(processor)
    return processor


class WithholdingProcessor(SpanProcessor):
    """Hands spans to ``inner`` without exception messages, stack traces or status texts."""

    def __init__(self, inner: SpanProcessor) -> None:
        self._inner = inner

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._inner.on_end(withhold(span))

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class ExportingProcessor(WithholdingProcessor):
    """A processor that sends spans somewhere; ``live`` counts those not shut down.

    While none is live, the root sampler records no new trace (``CommandsAndRatio``).
    """

    live = 0

    def __init__(self, inner: SpanProcessor) -> None:
        super().__init__(inner)
        self._live = True
        ExportingProcessor.live += 1

    def shutdown(self) -> None:
        if self._live:
            self._live = False
            ExportingProcessor.live -= 1
        super().shutdown()


_NOT_RECORDED = SamplingResult(Decision.DROP)


def withhold(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` without the texts that may hold personal data."""
    scrub_events = any(e.name == "exception" for e in span.events)
    if not scrub_events and not span.status.description:
        return span
    events = [
        Event(
            e.name,
            {k: v for k, v in (e.attributes or {}).items() if k not in _WITHHELD},
            e.timestamp,
        )
        for e in span.events
    ]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def inject(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The current trace context as W3C headers (empty when there is no sampled span)."""
    headers: dict[str, str] = dict(carrier or {})
    propagate.inject(headers)
    return headers


def extract_mapping(headers: Mapping[str, str]) -> Context:
    """The trace context in a mapping of headers (an empty context when there is none)."""
    return propagate.extract(headers)


def kafka_headers_context(headers: Sequence[tuple[str, bytes]] | None) -> Context | None:
    """The trace context of a Kafka record's headers, or None when it carries none."""
    found = {
        k: v.decode("latin-1") for k, v in headers or () if k in TRACE_HEADERS and v is not None
    }
    if "traceparent" not in found:
        return None
    return propagate.extract(found)


def kafka_trace_headers(span: Span) -> list[tuple[str, bytes]]:
    """W3C headers naming ``span`` as the parent of whatever the record causes."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return [(k, v.encode()) for k, v in carrier.items()]


def links_to(contexts: Iterable[Context | None]) -> list[trace.Link]:
    """Links to the spans that ``contexts`` hold (for a batch span)."""
    links = []
    for ctx in contexts:
        if ctx is None:
            continue
        span_context = trace.get_current_span(ctx).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
    return links


def current_ids() -> tuple[str, str] | None:
    """The current (trace id, span id) in hex, or None outside a valid span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
