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
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
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
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
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


def instrument_app(app: Any, service: str) -> None:
    """Trace a FastAPI app's requests (not its health, metrics and docs endpoints).

    The span keeps the route template and the path, never the query string: filters such
    as ``?email=`` would otherwise put personal data in the trace.
    """
    if not enabled():
        return
    app.add_middleware(TracingMiddleware, service=service)


#: Paths whose requests are not traced (probes, scrapes, documents).
UNTRACED = "/health/,/metrics,/docs,/openapi.json,/asyncapi.json"
_TRACE_HEADER_NAMES = frozenset(h.encode() for h in TRACE_HEADERS)


class TracingMiddleware:
    """One SERVER span per request, named after its route (``POST /sessions/{session_id}``).

    The span is started here, not by OpenTelemetry's ASGI middleware, which costs more CPU per
    request with an exporter live (docs/decisions/0004-own-otlp-exporter.md) for attributes
    nothing reads (``http.host``, ``net.host.port``, ``http.server_name``, the URL twice), its
    own duration histograms (the services have Prometheus' ``HttpMetricsMiddleware``) and a
    wrapper around each ``receive``.

    Recorded, the span carries the stable semantic conventions' ``http.request.method``,
    ``http.route`` (never ``url.path`` nor the query string: a path segment or a filter such
    as ``?email=`` may carry whatever a caller typed, personal data included), ``url.scheme``
    and ``http.response.status_code``, and the service's name; a 5xx answer or an exception
    marks it as an error. While no span processor exports (``ExportingProcessor.live``), the
    request gets its unrecorded span without any of them: its trace context, from a
    ``traceparent`` header or new, still reaches the logs, the outbox rows and the Kafka
    headers.

    The route is found by matching the app's route patterns in order (its ``routes``
    flattened once), not by FastAPI's route matching a second time.
    """

    def __init__(self, app: Any, service: str) -> None:
        self._app = app
        self._service = service
        self._untraced = tuple(UNTRACED.split(","))
        self._routes: list[tuple[Any, frozenset[str] | None, str]] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self._untraced):
            await self._app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _TRACE_HEADER_NAMES
        }
        parent = propagate.extract(carrier) if carrier else None
        if not ExportingProcessor.live:
            span = tracer().start_span("HTTP", context=parent, kind=SpanKind.SERVER)
            with trace.use_span(span, end_on_exit=True):
                await self._app(scope, receive, send)
            return
        await self._recorded(scope, receive, send, parent)

    async def _recorded(self, scope: Any, receive: Any, send: Any, parent: Context | None) -> None:
        method = scope["method"]
        route = self.route_of(scope)
        attributes: dict[str, str] = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
            SERVICE_ATTRIBUTE: self._service,
        }
        if route is not None:
            attributes["http.route"] = route
        span = tracer().start_span(
            f"{method} {route}" if route is not None else method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        status = 0

        async def send_noting_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with trace.use_span(span, end_on_exit=True):
            try:
                await self._app(scope, receive, send_noting_status)
            finally:
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)

    def route_of(self, scope: Any) -> str | None:
        """The template of the route serving the request (one allowing another method if
        none allows its own, as a 405 answer does), or None."""
        if self._routes is None:
            from fastapi.routing import iter_route_contexts

            app = scope.get("app")
            routes = getattr(app, "routes", [])
            self._routes = [
                (r.path_regex, frozenset(r.methods) if r.methods else None, r.path)
                for r in iter_route_contexts(routes)
                if getattr(r, "path_regex", None) is not None and r.path
            ]
        path, method = scope["path"], scope.get("method")
        partial = None
        for pattern, methods, template in self._routes:
            if pattern.match(path):
                if methods is None or method in methods:
                    return template
                partial = partial or template
        return partial


def instrument_engine(engine: Any, provider: trace.TracerProvider | None = None) -> None:
    """Trace the database transactions of a SQLAlchemy (async) engine: one CLIENT span each.

    A transaction begun inside a recorded span gets a span (``BEGIN`` to ``COMMIT`` or
    ``ROLLBACK``) whose events are its statements, in order: the SQL text (never the
    parameters) at the statement's start time, with its duration. One span per transaction
    instead of one per statement keeps tracing every command cheap (half the spans to export
    for an enrollment) and still shows where the time went. A statement of an unsampled
    request (or of no request) costs nothing.
    """
    if not enabled() and provider is None:
        return
    from sqlalchemy import event

    sync_engine = getattr(engine, "sync_engine", engine)
    tracer = trace.get_tracer(__name__, tracer_provider=provider)  # the global one by default
    url = sync_engine.url
    base: dict[str, Any] = {"db.system": "postgresql", "db.name": url.database or ""}
    if url.host:
        base["server.address"] = url.host
    if url.port:
        base["server.port"] = url.port

    def begin(conn: Any) -> None:
        abandoned = conn.info.pop(_TX_SPAN, None)  # a transaction that never said how it ended
        if abandoned is not None:
            abandoned[0].end()
        if trace.get_current_span().is_recording():
            # [span, statements so far, whether one failed]
            conn.info[_TX_SPAN] = [
                tracer.start_span("transaction", kind=SpanKind.CLIENT, attributes=base),
                0,
                False,
            ]

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if _TX_SPAN in conn.info:
            conn.info[_TX_STARTED] = time.time_ns()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        tx = conn.info.get(_TX_SPAN)
        started = conn.info.pop(_TX_STARTED, None)
        if tx is None or started is None:
            return
        tx[1] += 1
        attributes = {"db.statement": statement, "db.duration_ms": (time.time_ns() - started) / 1e6}
        tx[0].add_event(sql_operation(statement), attributes, timestamp=started)

    def failed(context: Any) -> None:
        conn = context.connection
        tx = conn.info.get(_TX_SPAN) if conn is not None else None
        if tx is not None:
            tx[1] += 1
            tx[2] = True
            statement = context.statement or ""
            tx[0].add_event(
                sql_operation(statement) + " failed",
                {
                    "db.statement": statement,
                    "exception.type": type(context.original_exception).__name__,
                },
            )

    def end(outcome: str) -> Callable[[Any], None]:
        def finish(conn: Any) -> None:
            tx = conn.info.pop(_TX_SPAN, None)
            conn.info.pop(_TX_STARTED, None)
            if tx is None:
                return
            span, statements, failed = tx
            span.update_name(outcome if not statements else f"transaction {outcome}")
            span.set_attribute("db.statement_count", statements)
            if failed:  # a read's session also ends in ROLLBACK: that is no error
                span.set_status(Status(StatusCode.ERROR))
            span.end()

        return finish

    event.listen(sync_engine, "begin", begin)
    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", failed)
    event.listen(sync_engine, "commit", end("COMMIT"))
    event.listen(sync_engine, "rollback", end("ROLLBACK"))


_TX_SPAN = "tpp.tx_span"
_TX_STARTED = "tpp.tx_statement_started"


@functools.lru_cache(maxsize=128)
def sql_operation(statement: str) -> str:
    """The statement's first keyword (SELECT, INSERT, WITH, ...) as the event's name (the
    texts are the code's constants: each is split once)."""
    head = statement.lstrip().split(None, 1)
    return head[0].upper() if head else "SQL"
