"""Structured JSON logs with the current trace and span ids; exception messages withheld.

Every line is one JSON object: ``time``, ``level``, ``logger``, ``message``, ``service``,
``trace_id``/``span_id`` inside a span, and the record's ``extra`` fields (``event_id``,
``topic``, ``partition``, ``offset``, ...). Tracebacks keep their frames and the exception
type but not its message: drivers put row values (possibly personal data) in messages.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from tpp_plumbing.observability import telemetry

_MARK = "_tpp_json"
# Loggers that servers configure with handlers of their own; ours replace them.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` of the current span (when there is one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = telemetry.current_ids()
        if ids is not None and not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = ids
        return True


class Formatter(JsonFormatter):
    """JSON lines; exceptions as type and frames, without their message."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service} if service else None,
        )

    def formatException(self, ei: Any) -> str:  # noqa: N802 - overrides logging's name
        exc_type, _, tb = ei
        frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]
        name = f"{exc_type.__module__}.{exc_type.__qualname__}" if exc_type else "unknown"
        return "\n".join([*frames, f"{name} (message withheld)"])


class ServerAccessLogFilter(logging.Filter):
    """Drops uvicorn's access log lines: they carry the raw path and query, whatever the
    client typed (``GET /trainees/<anything>``, ``?name=...``: personal data). The service
    logs its own on ``tpp.access``, with the route template (``HttpMetricsMiddleware``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "uvicorn.access"


def json_handler(service: str, stream: Any = None) -> logging.Handler:
    """A handler writing JSON lines (stderr by default), with trace ids, no raw paths."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(Formatter(service))
    handler.addFilter(TraceContextFilter())
    handler.addFilter(ServerAccessLogFilter())
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send the process's logs (and the server's) to stderr as JSON lines (idempotent)."""
    handler = json_handler(service)
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    if any(getattr(h, _MARK, False) for h in root.handlers):
        return
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        for existing in list(server_logger.handlers):
            server_logger.removeHandler(existing)
        # uvicorn's access lines hold raw paths: not handed on (nor even made: uvicorn makes
        # them only for a logger with handlers).
        server_logger.propagate = name != "uvicorn.access"
