"""OTLP/HTTP span export with the JSON encoding (``OTEL_EXPORTER_OTLP_PROTOCOL=http/json``).

The platform's default protocol. OTLP defines two encodings over HTTP, binary protobuf and
JSON, and collectors (the OpenTelemetry Collector, Jaeger, Tempo) take both on
``/v1/traces``. The SDK's protobuf exporter builds a protobuf message object for every
span, attribute and event, and a traced enrollment makes three spans: its export thread was about
a tenth of a traced service's CPU. Here a span becomes plain dicts and lists that orjson
serializes, at a fraction of that cost (docs/decisions/0004-own-otlp-exporter.md).
``http/protobuf`` still selects the SDK's exporter.

The JSON is OTLP's (the protobuf JSON mapping with OTLP's rules): lowerCamelCase field names;
trace and span ids as hex, not base64; enums as integers; 64-bit integers as decimal strings.
``tests`` check it field by field against the SDK's protobuf encoding of the same spans.

Where a batch goes (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else ``OTEL_EXPORTER_OTLP_ENDPOINT``
plus ``v1/traces``), its headers, timeout (seconds), compression (``gzip``), CA certificate and
client certificate and key come from the same ``OTEL_EXPORTER_OTLP_*`` variables as for the
SDK's exporter. One kept-alive
``requests`` session sends it, and urllib3's ``Retry`` retries a refused export: a connection
error, or status 429, 502, 503 or 504, up to 3 times with exponential backoff, honouring
``Retry-After`` up to 2 s. A batch that still fails is dropped and logged. The exporter never
blocks the service: the SDK's batch processor calls it from its own thread.
"""

from __future__ import annotations

import base64
import gzip
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import requests
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode
from opentelemetry.util.re import parse_env_headers
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:4318/"
TRACES_PATH = "v1/traces"
DEFAULT_TIMEOUT_S = 10.0
#: OTLP's ``SpanKind`` and ``StatusCode`` numbers (the API's INTERNAL is 0, OTLP's 1).
_KINDS = {kind: kind.value + 1 for kind in SpanKind}
_STATUS_CODES = {code: code.value for code in StatusCode}
#: ``SpanFlags``: the flags say whether the parent is remote, and whether it is.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def _setting(name: str) -> str:
    """``OTEL_EXPORTER_OTLP_TRACES_<name>``, else ``OTEL_EXPORTER_OTLP_<name>``, else ""."""
    return (
        os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}")
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")
        or ""
    ).strip()


def _endpoint() -> str:
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces  # the full URL, as given
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
    return base.rstrip("/") + "/" + TRACES_PATH


def _timeout(text: str) -> float:
    """Seconds, as the SDK's exporter reads the variable; its default when unset or invalid."""
    try:
        return float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        log.warning("OTLP timeout %r is not a number; using %s s", text, DEFAULT_TIMEOUT_S)
        return DEFAULT_TIMEOUT_S


class JsonSpanExporter(SpanExporter):
    """Sends each batch of spans as one OTLP/JSON ``ExportTraceServiceRequest``."""

    def __init__(self) -> None:
        self.endpoint = _endpoint()
        self._timeout = _timeout(_setting("TIMEOUT"))
        self._gzip = _setting("COMPRESSION").lower() == "gzip"
        self._session = requests.Session()
        self._session.trust_env = False  # no netrc or proxy lookups on every export
        # As the SDK's exporter reads them: W3C-baggage-like ``key=value,key2=value2``.
        self._session.headers.update(parse_env_headers(_setting("HEADERS"), liberal=True))
        self._session.headers["Content-Type"] = "application/json"
        self._session.headers["User-Agent"] = "tpp-plumbing OTLP/JSON exporter"
        if self._gzip:
            self._session.headers["Content-Encoding"] = "gzip"
        certificate = _setting("CERTIFICATE")
        if certificate:
            self._session.verify = certificate
        client_certificate, client_key = _setting("CLIENT_CERTIFICATE"), _setting("CLIENT_KEY")
        if client_certificate:
            self._session.cert = (
                (client_certificate, client_key) if client_key else client_certificate
            )
        # Waits are short and few: the batch processor's one thread waits with them (new
        # spans queue up meanwhile, and are dropped when the queue is full), and so does a
        # process exiting with spans still to send. A collector's Retry-After: 60 must not
        # hold either for a minute (urllib3 would honour up to 6 hours).
        retry = Retry(
            total=3,
            backoff_factor=0.25,
            backoff_max=2,
            retry_after_max=2,
            status_forcelist=(429, 502, 503, 504),
            allowed_methods=None,  # POST too: an export is safe to repeat
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=1)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._stopped = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped:
            return SpanExportResult.FAILURE
        body = encode(spans)
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
        try:
            response = self._session.post(self.endpoint, data=body, timeout=self._timeout)
        except requests.RequestException as error:
            log.warning(
                "span export failed, %d spans dropped: %s", len(spans), type(error).__name__
            )
            return SpanExportResult.FAILURE
        if response.status_code >= 300:
            log.warning(
                "span export refused (HTTP %d), %d spans dropped",
                response.status_code,
                len(spans),
            )
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._stopped = True
        self._session.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered here


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """The OTLP/JSON ``ExportTraceServiceRequest`` of ``spans``."""
    # Grouped by resource and scope objects, not by their values: a resource's hash serializes
    # its attributes to JSON, on every span. A process has one resource per provider.
    grouped: dict[tuple[int, int], tuple[Any, Any, list[dict[str, Any]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        key = (id(resource), id(scope))
        group = grouped.get(key)
        if group is None:
            group = grouped[key] = (resource, scope, [])
        group[2].append(_span(span))
    by_resource: dict[int, tuple[Any, list[tuple[Any, list[dict[str, Any]]]]]] = {}
    for resource, scope, encoded_spans in grouped.values():
        by_resource.setdefault(id(resource), (resource, []))[1].append((scope, encoded_spans))
    resource_spans = []
    for resource, scopes in by_resource.values():
        scope_spans = []
        for scope, encoded in scopes:
            entry: dict[str, Any] = {"spans": encoded}
            if scope is not None:
                entry["scope"] = _non_empty(
                    {
                        "name": scope.name,
                        "version": scope.version or "",
                        "attributes": _attributes(scope.attributes),
                    }
                )
                if scope.schema_url:
                    entry["schemaUrl"] = scope.schema_url
            scope_spans.append(entry)
        item: dict[str, Any] = {
            "resource": {"attributes": _attributes(resource.attributes)},
            "scopeSpans": scope_spans,
        }
        if resource.schema_url:
            item["schemaUrl"] = resource.schema_url
        resource_spans.append(item)
    return orjson.dumps({"resourceSpans": resource_spans})


def _span(span: ReadableSpan) -> dict[str, Any]:
    # Each property of a ReadableSpan is read once: most build a copy or a proxy.
    context, parent = span.context, span.parent
    assert context is not None  # a finished SDK span always has one
    encoded: dict[str, Any] = {
        "traceId": format(context.trace_id, "032x"),
        "spanId": format(context.span_id, "016x"),
        "name": span.name,
        "kind": _KINDS[span.kind],
        "startTimeUnixNano": str(span.start_time),
        "endTimeUnixNano": str(span.end_time),
        "flags": _flags(parent),
    }
    if context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    if parent is not None:
        encoded["parentSpanId"] = format(parent.span_id, "016x")
    attributes = span.attributes
    if attributes:
        encoded["attributes"] = _attributes(attributes)
    events = span.events
    if events:
        encoded["events"] = [_event(event) for event in events]
    links = span.links
    if links:
        encoded["links"] = [_link(link) for link in links]
    status = span.status
    if status.status_code is not StatusCode.UNSET:
        encoded["status"] = _non_empty(
            {"code": _STATUS_CODES[status.status_code], "message": status.description or ""}
        )
    else:
        encoded["status"] = {}
    for key, count in (
        ("droppedAttributesCount", span.dropped_attributes),
        ("droppedEventsCount", span.dropped_events),
        ("droppedLinksCount", span.dropped_links),
    ):
        if count:
            encoded[key] = count
    return encoded


def _event(event: Event) -> dict[str, Any]:
    encoded: dict[str, Any] = {"timeUnixNano": str(event.timestamp), "name": event.name}
    attributes = event.attributes
    if attributes:
        encoded["attributes"] = _attributes(attributes)
    if event.dropped_attributes:
        encoded["droppedAttributesCount"] = event.dropped_attributes
    return encoded


def _link(link: Link) -> dict[str, Any]:
    return _non_empty(
        {
            "traceId": format(link.context.trace_id, "032x"),
            "spanId": format(link.context.span_id, "016x"),
            "attributes": _attributes(link.attributes),
            "droppedAttributesCount": link.dropped_attributes,
            "flags": _flags(link.context),
        }
    )


def _flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


def _non_empty(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v or v is False}


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not attributes:
        return []
    return [
        {"key": key, "value": {"stringValue": value} if type(value) is str else _value(value)}
        for key, value in attributes.items()
    ]


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):  # before int: a bool is an int
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _attributes(value)}}
    return {"stringValue": str(value)}
