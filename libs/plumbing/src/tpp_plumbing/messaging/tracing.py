"""Spans around the transaction that applies consumed records, continuing each record's trace.

One record: a CONSUMER span ``<topic> process`` whose parent is the producer's span
(``traceparent`` header); the transaction's SQL and any outbox rows it writes are its
children, so the trace goes on. A batch (one transaction for many records): a CONSUMER span
``<group> process batch`` in a trace of its own, *linked* to every record's trace, holds the
SQL; and every record gets a span ``<topic> process`` in *its own* trace (parent: its
producer's span, linked to the batch span) covering the transaction that applied it. So each
event's trace reaches its projection update.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, StatusCode

from tpp_plumbing.messaging.consumer import Record
from tpp_plumbing.messaging.retry import error_name
from tpp_plumbing.observability import telemetry
from tpp_plumbing.observability.metrics import sniff_event_id, sniff_event_type


@contextlib.contextmanager
def traced(records: list[Record], *, group_id: str, service: str) -> Iterator[None]:
    """Spans for ``records``, applied by ``group_id`` of ``service`` in one transaction."""
    tracer = telemetry.tracer()
    if len(records) > 1 and not telemetry.ExportingProcessor.live:
        # Nothing exports: no span would be read, and the batch's own trace is new anyway
        # (a single record's span stays: it hands its trace on to the outbox rows).
        yield
        return
    if len(records) == 1:
        [record] = records
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=telemetry.kafka_headers_context(record.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=_span_attributes(record, group_id, service),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except Exception as error:
                _failed(span, error)
                raise
        return
    contexts = [telemetry.kafka_headers_context(r.headers) for r in records]
    with tracer.start_as_current_span(
        f"{group_id} process batch",
        context=Context(),
        kind=trace.SpanKind.CONSUMER,
        links=telemetry.links_to(contexts),
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.batch.message_count": len(records),
            "messaging.consumer.group.name": group_id,
            telemetry.SERVICE_ATTRIBUTE: service,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as batch:
        batch_context = batch.get_span_context()
        link = [trace.Link(batch_context)] if batch_context.is_valid else None
        spans = [
            tracer.start_span(
                f"{record.topic} process",
                context=ctx,
                kind=trace.SpanKind.CONSUMER,
                links=link,
                attributes=_span_attributes(record, group_id, service),
            )
            for record, ctx in zip(records, contexts, strict=True)
            if ctx is not None
        ]
        try:
            yield
        except Exception as error:
            for span in [batch, *spans]:
                _failed(span, error)
            raise
        finally:
            for span in spans:
                span.end()


def _span_attributes(record: Record, group_id: str, service: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.consumer.group.name": group_id,
        "tpp.event.type": sniff_event_type(record.value),
        telemetry.SERVICE_ATTRIBUTE: service,
    }
    event_id = sniff_event_id(record.value)
    if event_id is not None:
        attributes["messaging.message.id"] = event_id
    return attributes


def _failed(span: Span, error: BaseException) -> None:
    span.set_status(StatusCode.ERROR)
    span.set_attribute("error.type", error_name(error))
