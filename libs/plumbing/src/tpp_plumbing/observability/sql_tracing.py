"""Tracing of database transactions: one CLIENT span each, its statements as events."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tpp_plumbing.observability.telemetry import TRACER_NAME, enabled


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
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=provider)  # the global one by default
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
