"""Tracing of HTTP requests: one SERVER span per request, named after its route.

Probes, scrapes and documents (``UNTRACED``) are not traced; a request that arrives with a
``traceparent`` continues its caller's trace (``tpp_plumbing.observability.telemetry``).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, StatusCode

from tpp_plumbing.observability.telemetry import (
    SERVICE_ATTRIBUTE,
    TRACE_HEADERS,
    ExportingProcessor,
    enabled,
    tracer,
)


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
